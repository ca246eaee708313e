using ModelCompiler.Runtime;

namespace ModelCompiler.Tests.Cli;

/// <summary>Bad input gets one line naming the file, tensor or option, and a non-zero exit: never a stack trace.</summary>
public class CliErrorTests
{
    private static string Llama => CliRunner.Oracle("llama");

    private static void AssertOneLineError(CliRunner.Result r, params string[] phrases)
    {
        Assert.NotEqual(0, r.ExitCode);
        Assert.DoesNotContain("   at ", r.Err);
        var lines = r.Err.Trim().Split('\n');
        Assert.Single(lines);
        foreach (var p in phrases) Assert.Contains(p, r.Err);
    }

    [Fact]
    public void MissingWeightsFolder() =>
        AssertOneLineError(CliRunner.Run("eval", CliRunner.Example("llama.arch"), "--weights", "/nonexistent/folder",
            "--inputs", "x.safetensors", "--out", "y.safetensors"), "/nonexistent/folder");

    [Fact]
    public void WeightsOfAnotherArchitectureNameTheMissingTensor()
    {
        var r = CliRunner.Run("eval", CliRunner.Example("llama.arch"), "--weights", Path.Combine(CliRunner.Oracle("gpt2"), "model.safetensors"),
            "--inputs", Path.Combine(Llama, "reference.safetensors"), "--out", CliRunner.TempFile("o.safetensors"),
            "--set", "vocab=256", "dim=64", "n_layers=2", "n_heads=4", "n_kv_heads=2", "ffn_dim=160");
        AssertOneLineError(r, "no tensor 'model.embed_tokens.weight'", "model.safetensors");
    }

    [Fact]
    public void WrongShapeNamesTensorAndDeclaration()
    {
        var r = CliRunner.Run("eval", CliRunner.Example("llama.arch"), "--weights", Path.Combine(Llama, "model.safetensors"),
            "--inputs", Path.Combine(Llama, "reference.safetensors"), "--out", CliRunner.TempFile("o.safetensors"),
            "--set", "vocab=256", "dim=64", "n_layers=2", "n_heads=4", "n_kv_heads=4", "ffn_dim=160");
        AssertOneLineError(r, "model.layers.0.self_attn.k_proj.weight", "[32,64]", "f32[64,64]");
    }

    [Fact]
    public void InputsFileWithoutInputIds()
    {
        var r = CliRunner.Run("eval", CliRunner.Example("llama.arch"), "--weights", Llama,
            "--inputs", Path.Combine(Llama, "model.safetensors"), "--out", CliRunner.TempFile("o.safetensors"));
        AssertOneLineError(r, "no tensor 'input_ids'");
    }

    [Fact]
    public void TokenIdOutsideVocabulary()
    {
        var inputs = CliRunner.TempFile("in.safetensors");
        SafetensorsWriter.Write(inputs, [TensorData.FromInt64("input_ids", [1, 3], [1, 2, 999])]);
        var r = CliRunner.Run("eval", CliRunner.Example("llama.arch"), "--weights", Llama, "--inputs", inputs, "--out", CliRunner.TempFile("o.safetensors"));
        File.Delete(inputs);
        AssertOneLineError(r, "999");
    }

    [Fact]
    public void InputOfWrongRank()
    {
        var inputs = CliRunner.TempFile("in.safetensors");
        SafetensorsWriter.Write(inputs, [TensorData.FromInt64("input_ids", [3], [1, 2, 3])]);
        var r = CliRunner.Run("eval", CliRunner.Example("llama.arch"), "--weights", Llama, "--inputs", inputs, "--out", CliRunner.TempFile("o.safetensors"));
        File.Delete(inputs);
        AssertOneLineError(r, "input_ids");
    }

    [Fact]
    public void TruncatedWeightsFile()
    {
        var dir = Directory.CreateTempSubdirectory("mc-trunc").FullName;
        File.Copy(Path.Combine(Llama, "config.json"), Path.Combine(dir, "config.json"));
        var bytes = File.ReadAllBytes(Path.Combine(Llama, "model.safetensors"));
        File.WriteAllBytes(Path.Combine(dir, "model.safetensors"), bytes[..(bytes.Length / 2)]);
        var r = CliRunner.Run("eval", CliRunner.Example("llama.arch"), "--weights", dir,
            "--inputs", Path.Combine(Llama, "reference.safetensors"), "--out", CliRunner.TempFile("o.safetensors"));
        Directory.Delete(dir, true);
        AssertOneLineError(r, "model.safetensors");
    }

    /// <summary>Runs eval on the llama oracle with its config.json rewritten by <paramref name="edit"/>.</summary>
    private static CliRunner.Result EvalWithConfig(Func<string, string> edit)
    {
        var dir = Directory.CreateTempSubdirectory("mc-cfg").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "config.json"), edit(File.ReadAllText(Path.Combine(Llama, "config.json"))));
            File.Copy(Path.Combine(Llama, "model.safetensors"), Path.Combine(dir, "model.safetensors"));
            return CliRunner.Run("eval", CliRunner.Example("llama.arch"), "--weights", dir,
                "--inputs", Path.Combine(Llama, "reference.safetensors"), "--out", CliRunner.TempFile("o.safetensors"));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void UnsupportedConfigKeyIsNamed() =>
        AssertOneLineError(EvalWithConfig(c => c.Replace("\"attention_bias\": false,", "\"attention_bias\": false, \"quantization_config\": {\"bits\": 4},")),
            "config.json", "quantization_config");

    [Fact]
    public void UnsupportedRopeTypeIsAnError()
    {
        var r = EvalWithConfig(c => c.Replace("\"rope_type\": \"default\"", "\"rope_type\": \"yarn\""));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("MC0214", r.Err);
        Assert.Contains("yarn", r.Err);
    }

    [Fact]
    public void UnknownKeyInsideAMappedObjectIsNamed() =>
        AssertOneLineError(EvalWithConfig(c => c.Replace("\"rope_type\": \"default\"", "\"rope_type\": \"default\", \"low_freq_factor\": 1.0")),
            "rope_parameters.low_freq_factor");

    [Fact]
    public void MalformedConfigJsonNamesFileAndPosition() =>
        AssertOneLineError(EvalWithConfig(_ => "{\n  \"hidden_size\": 64,\n  oops\n}"), "config.json:3:");

    [Fact]
    public void ConfigValueOfWrongType() =>
        AssertOneLineError(EvalWithConfig(c => c.Replace("\"hidden_size\": 64", "\"hidden_size\": \"64\"")), "hidden_size", "int");

    [Fact]
    public void UnknownSetNameListsTheKnownOnes() =>
        AssertOneLineError(CliRunner.Run("print-ir", CliRunner.Example("llama.arch"), "--set", "dimm=3"), "dimm", "dim");

    [Fact]
    public void BadSetValue() =>
        AssertOneLineError(CliRunner.Run("print-ir", CliRunner.Example("llama.arch"), "--set", "dim=abc"), "dim=abc", "int");

    [Fact]
    public void UnknownTarget()
    {
        var r = CliRunner.Run("eval", CliRunner.Example("llama.arch"), "--weights", Llama, "--inputs", Path.Combine(Llama, "reference.safetensors"),
            "--out", CliRunner.TempFile("o.safetensors"), "--target", "tpu");
        AssertOneLineError(r, "tpu");
    }

    [Fact]
    public void MissingRequiredOptionIsAUsageError()
    {
        var r = CliRunner.Run("eval", CliRunner.Example("llama.arch"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--inputs", r.Err);
    }

    [Fact]
    public void ModelFileMissing() => AssertOneLineError(CliRunner.Run("check", "/nope/model.arch"), "/nope/model.arch");
}
