using ModelCompiler.Runtime;

namespace ModelCompiler.Tests.Cli;

/// <summary>
/// The foundation's proof: `mc eval` itself, on the Hugging Face reference models, against logits and
/// greedy tokens that Hugging Face transformers computed (tests/oracles, copied from shared/oracles).
/// </summary>
public class EvalOracleTests
{
    [Theory]
    [InlineData("llama", "llama.arch")]
    [InlineData("gpt2", "gpt2.arch")]
    [InlineData("llama_mha", "llama.arch")]         // generated with tools/gen_oracles.py, seed offset 300
    [InlineData("llama_mqa", "llama.arch")]
    [InlineData("llama_rope_theta", "llama.arch")]
    [InlineData("llama_bias_tied", "llama.arch")]     // tools/gen_extra_oracles.py: q/k/v/o and MLP biases, tied head, head_dim 32, EOS list
    [InlineData("gpt2_layerscale", "gpt2.arch")]      // scale_attn_by_inverse_layer_idx, n_inner, exact GELU
    [InlineData("llama_rope_linear", "llama.arch")]   // position interpolation, factor 2, 24 tokens past max_position_embeddings 16
    [InlineData("llama_rope_dynamic", "llama.arch")]  // dynamic NTK: greedy follows HF's cached behaviour (keys keep their base)
    public void EvalMatchesHuggingFaceLogitsAndGreedyIds(string family, string arch) =>
        Oracles.OracleCheck.Run(family, CliRunner.Example(arch), CliRunner.Oracle(family));

    [Fact]
    public void EvalWithoutGenerateWritesOnlyLogitsAndJsonDescribesThem()
    {
        var oracle = CliRunner.Oracle("llama");
        var output = CliRunner.TempFile("out.safetensors");
        var result = CliRunner.Run("eval", CliRunner.Example("llama.arch"), "--weights", oracle,
            "--inputs", Path.Combine(oracle, "reference.safetensors"), "--out", output, "--json");
        Assert.True(result.ExitCode == 0, result.Err);
        using (var outFile = SafetensorsFile.Open(output))
            Assert.Equal(["logits"], outFile.Tensors.Select(t => t.Name));
        File.Delete(output);
        using var json = System.Text.Json.JsonDocument.Parse(result.Out);
        Assert.Equal("interpreter", json.RootElement.GetProperty("target").GetString());
        Assert.Equal([2, 12, 256], json.RootElement.GetProperty("outputs").GetProperty("logits").GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()));
    }

    [Fact]
    public void F64PrecisionAgreesWithF32WithinTolerance()
    {
        var oracle = CliRunner.Oracle("gpt2");
        var reference = Path.Combine(oracle, "reference.safetensors");
        var output = CliRunner.TempFile("out.safetensors");
        var result = CliRunner.Run("eval", CliRunner.Example("gpt2.arch"), "--weights", oracle, "--inputs", reference, "--out", output, "--precision", "f64");
        Assert.True(result.ExitCode == 0, result.Err);
        using var outFile = SafetensorsFile.Open(output);
        using var refFile = SafetensorsFile.Open(reference);
        var expected = refFile.ReadFloat32("logits");
        var actual = outFile.ReadFloat32("logits");
        double maxRef = expected.Max(Math.Abs);
        Assert.True(expected.Zip(actual).Max(p => Math.Abs(p.First - p.Second)) / maxRef <= 1e-4);
        outFile.Dispose();
        File.Delete(output);
    }

    [Fact]
    public void SingleSafetensorsFileAsWeightsUsesDefaultsAndSet()
    {
        // Without a folder there is no config.json: the sizes come from --set.
        var oracle = CliRunner.Oracle("llama");
        var output = CliRunner.TempFile("out.safetensors");
        var result = CliRunner.Run("eval", CliRunner.Example("llama.arch"), "--weights", Path.Combine(oracle, "model.safetensors"),
            "--inputs", Path.Combine(oracle, "reference.safetensors"), "--out", output,
            "--set", "vocab=256", "dim=64", "n_layers=2", "n_heads=4", "n_kv_heads=2", "ffn_dim=160");
        Assert.True(result.ExitCode == 0, result.Err);
        File.Delete(output);
    }
}
