using ModelCompiler.Cli;
using ModelCompiler.Runtime;

namespace ModelCompiler.Tests.Oracles;

/// <summary>
/// More architecture families against Hugging Face: `mc eval` in-process on examples/&lt;family&gt;.arch with the
/// oracle's config.json and weights (tests/oracles/&lt;family&gt;, made by tools/gen_oracles.py, seed offset 300).
/// </summary>
public class ZooOracleTests2
{
    private sealed record Run(int ExitCode, string Out, string Err);

    private static Run Mc(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = McApp.Run(args, stdout, stderr);
        return new Run(code, stdout.ToString(), stderr.ToString());
    }

    private static string Oracle(string family) => Path.Combine(AppContext.BaseDirectory, "oracles", family);

    private static string Example(string arch) => Path.Combine(AppContext.BaseDirectory, "examples", arch);

    private static string TempFile(string name) => Path.Combine(Path.GetTempPath(), $"mc-zoo2-{Guid.NewGuid():N}-{name}");

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
    public void EvalMatchesHuggingFaceLogitsAndGreedyIds(string family, string arch)
    {
        var oracle = Oracle(family);
        var reference = Path.Combine(oracle, "reference.safetensors");
        var output = TempFile("out.safetensors");
        using var refFile = SafetensorsFile.Open(reference);
        var expectedGreedy = refFile.ReadInt64("greedy_ids");
        int steps = expectedGreedy.Length - (int)refFile.Get("input_ids").Shape[1];

        var result = Mc("eval", Example(arch), "--weights", oracle, "--inputs", reference, "--out", output, "--generate", steps.ToString());
        Assert.True(result.ExitCode == 0, result.Err);
        try
        {
            using var outFile = SafetensorsFile.Open(output);
            Assert.Equal(refFile.Get("logits").Shape, outFile.Get("logits").Shape);
            var expected = refFile.ReadFloat32("logits");
            var actual = outFile.ReadFloat32("logits");
            double maxDiff = 0, maxRef = 0;
            for (int i = 0; i < expected.Length; i++)
            {
                maxDiff = Math.Max(maxDiff, Math.Abs(expected[i] - actual[i]));
                maxRef = Math.Max(maxRef, Math.Abs(expected[i]));
            }
            Assert.True(maxDiff / maxRef <= 1e-4, $"{family}: max|diff|/max|ref| = {maxDiff / maxRef:E3}");
            Assert.Equal(new long[] { 1, expectedGreedy.Length }, outFile.Get("greedy_ids").Shape);
            Assert.Equal(expectedGreedy, outFile.ReadInt64("greedy_ids"));
        }
        finally
        {
            File.Delete(output);
        }
    }

    /// <summary>Settings a family's .arch does not implement are refused by name, never silently computed wrong.</summary>
    [Theory]
    [InlineData("qwen2", "qwen2.arch", "use_sliding_window=true", "use_sliding_window")]
    [InlineData("gemma", "gemma.arch", "bidirectional=true", "use_bidirectional_attention")]
    [InlineData("falcon_mqa", "falcon.arch", "alibi=true", "alibi")]
    [InlineData("gptneox", "gptneox.arch", "rope_type=linear", "rope_type 'linear'")]
    public void UnsupportedSettingsAreRefused(string family, string arch, string set, string expectedInMessage)
    {
        var oracle = Oracle(family);
        var output = TempFile("out.safetensors");
        var result = Mc("eval", Example(arch), "--weights", oracle, "--inputs", Path.Combine(oracle, "reference.safetensors"),
            "--out", output, "--set", set);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains(expectedInMessage, result.Err);
        Assert.False(File.Exists(output));
    }
}
