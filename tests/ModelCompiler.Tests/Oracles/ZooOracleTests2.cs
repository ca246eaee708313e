using ModelCompiler.Tests.Cli;

namespace ModelCompiler.Tests.Oracles;

/// <summary>
/// More architecture families against Hugging Face: `mc eval` in-process on examples/&lt;family&gt;.arch with the
/// oracle's config.json and weights (tests/oracles/&lt;family&gt;, made by tools/gen_oracles.py, seed offset 300).
/// </summary>
public class ZooOracleTests2
{
    [Theory]
    [InlineData("qwen2", "qwen2.arch")]
    [InlineData("gemma", "gemma.arch")]
    [InlineData("opt", "opt.arch")]                 // greedy_ids regenerated with an all-ones attention mask: see its oracle.json
    [InlineData("opt_postln", "opt.arch")]
    [InlineData("falcon_mqa", "falcon.arch")]
    [InlineData("gptneox", "gptneox.arch")]
    // Config variants made the same way on the GPU machine (transformers 5.17.0; config_kwargs in each oracle.json):
    [InlineData("qwen2_tied", "qwen2.arch")]          // tied head, MQA, rope_theta 1e6, sliding_window set but off
    [InlineData("gemma_bias", "gemma.arch")]          // attention_bias (o_proj too), exact GELU, GQA, head_dim 32, untied
    [InlineData("opt_proj", "opt.arch")]              // word_embed_proj_dim 32 != hidden_size: project_in/out, post-LN
    [InlineData("opt_noaffine", "opt.arch")]          // LayerNorms without weights, enable_bias false, GELU, untied
    [InlineData("falcon_mha_seq", "falcon.arch")]     // multi_query false ([n_heads, 3, head_dim]), sequential, bias
    [InlineData("falcon_newarch", "falcon.arch")]     // new_decoder_architecture, 2 kv heads, ln_attn + ln_mlp, untied
    [InlineData("falcon_newarch_ln1", "falcon.arch")] // new_decoder_architecture with one LayerNorm
    [InlineData("gptneox_seq", "gptneox.arch")]       // sequential residual, partial_rotary_factor 0.5, theta 500, no attention bias, tied
    public void EvalMatchesHuggingFaceLogitsAndGreedyIds(string family, string arch) =>
        OracleCheck.Run(family, OracleCheck.Example(arch), OracleCheck.Folder(family));

    /// <summary>Settings a family's .arch does not implement are refused by name, never silently computed wrong.</summary>
    [Theory]
    [InlineData("qwen2", "qwen2.arch", "use_sliding_window=true", "use_sliding_window")]
    [InlineData("gemma", "gemma.arch", "bidirectional=true", "use_bidirectional_attention")]
    [InlineData("falcon_mqa", "falcon.arch", "alibi=true", "alibi")]
    [InlineData("gptneox", "gptneox.arch", "rope_type=linear", "rope_type 'linear'")]
    public void UnsupportedSettingsAreRefused(string family, string arch, string set, string expectedInMessage)
    {
        var oracle = OracleCheck.Folder(family);
        var output = CliRunner.TempFile("out.safetensors");
        var result = CliRunner.Run("eval", OracleCheck.Example(arch), "--weights", oracle, "--inputs", Path.Combine(oracle, "reference.safetensors"),
            "--out", output, "--set", set);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains(expectedInMessage, result.Err);
        Assert.False(File.Exists(output));
    }
}
