namespace ModelCompiler.Tests.Cli;

public class CliCommandTests
{
    [Theory]
    [InlineData("check")]
    [InlineData("print-ir")]
    [InlineData("eval")]
    [InlineData("demo")]
    [InlineData("passes")]
    [InlineData("compile")]
    [InlineData("stats")]
    [InlineData("import-hf")]
    [InlineData("graph")]
    [InlineData("tokenize")]
    public void EveryCommandHasHelp(string command)
    {
        var r = CliRunner.Run(command, "--help");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("Usage:", r.Out);
        Assert.Contains(" " + command + " ", r.Out[r.Out.IndexOf("Usage:", StringComparison.Ordinal)..]);
    }

    [Fact]
    public void RootHelpListsCommands()
    {
        var r = CliRunner.Run("--help");
        Assert.Equal(0, r.ExitCode);
        foreach (var c in new[] { "check", "print-ir", "eval", "compile", "demo", "passes", "stats", "import-hf", "graph", "tokenize" }) Assert.Contains(c, r.Out);
    }

    [Fact]
    public void CheckAcceptsTheExamples()
    {
        foreach (var arch in new[] { "llama.arch", "gpt2.arch" })
        {
            var r = CliRunner.Run("check", CliRunner.Example(arch));
            Assert.True(r.ExitCode == 0, r.Err);
            Assert.Contains(": ok (", r.Out);
        }
    }

    [Fact]
    public void CheckJsonReportsDiagnostics()
    {
        var file = CliRunner.TempFile("bad.arch");
        File.WriteAllText(file, "model M\nhyper d: int = 4\ninput x: f32[batch, d]\nforward {\n  output y = relu(xx)\n}\n");
        var r = CliRunner.Run("check", file, "--json");
        File.Delete(file);
        Assert.Equal(1, r.ExitCode);
        using var json = System.Text.Json.JsonDocument.Parse(r.Out);
        Assert.False(json.RootElement.GetProperty("ok").GetBoolean());
        var d = json.RootElement.GetProperty("diagnostics")[0];
        Assert.Equal("MC0201", d.GetProperty("code").GetString());
        Assert.Equal(5, d.GetProperty("line").GetInt32());
        Assert.Equal(19, d.GetProperty("column").GetInt32());
    }

    [Fact]
    public void PrintIrHonoursSetAndConfig()
    {
        var r = CliRunner.Run("print-ir", CliRunner.Example("llama.arch"), "--weights", CliRunner.Oracle("llama"), "--set", "n_layers=1");
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Contains("hyper dim = 64", r.Out);           // from config.json
        Assert.Contains("hyper n_layers = 1", r.Out);       // --set beats config.json
        Assert.Contains("weight \"model.layers.0.mlp.down_proj.weight\" : f32[64,160]", r.Out);
        Assert.DoesNotContain("model.layers.1.", r.Out);
        Assert.Contains("output \"logits\"", r.Out);
    }

    [Fact]
    public void PrintIrAfterPassGoesToStderr()
    {
        var r = CliRunner.Run("print-ir", CliRunner.Example("gpt2.arch"), "--set", "n_layers=1", "--print-ir-after", "all", "--time-passes");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("// IR after dead-code-elimination", r.Err);
        Assert.Contains("// pass timings", r.Err);
    }

    [Fact]
    public void DemoRunsTheDefaultModel()
    {
        var r = CliRunner.Run("demo", CliRunner.Example("llama.arch"), "--tokens", "3");
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Contains("greedy decode", r.Out);
        Assert.Contains("logits [1,6,256]", r.Out);
    }

    [Fact]
    public void PassesListsTheRegistry()
    {
        var r = CliRunner.Run("passes");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("dead-code-elimination", r.Out);
    }

    /// <summary>The real executable: exit codes and stderr as a shell sees them.</summary>
    [Fact]
    public void RealExecutableReportsDiagnosticsWithCaretAndExitCode()
    {
        var file = CliRunner.TempFile("three.arch");
        File.WriteAllText(file, "model M\nhyper d: int = \ninput x: f32[batch, 4]\nforward {\n  output y = relu(x\n}\n");
        var r = CliRunner.RunProcess("check", file);
        File.Delete(file);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(":2:15: error MC0101: expected an expression, found 'input' on line 3", r.Err);
        Assert.Contains("error MC0101", r.Err);
        Assert.Contains("^", r.Err);
        Assert.DoesNotContain("   at ", r.Err);
    }

    [Fact]
    public void RealExecutableEvalsAnOracle()
    {
        var oracle = CliRunner.Oracle("llama");
        var output = CliRunner.TempFile("o.safetensors");
        var r = CliRunner.RunProcess("eval", CliRunner.Example("llama.arch"), "--weights", oracle,
            "--inputs", Path.Combine(oracle, "reference.safetensors"), "--out", output, "--generate", "2", "--json");
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.True(File.Exists(output));
        File.Delete(output);
    }
}

public class HyperBindingFromConfigTests
{
    private static string PrintIr(string configJson, params string[] extra)
    {
        var dir = Directory.CreateTempSubdirectory("mc-hyper").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "config.json"), configJson);
            var r = CliRunner.Run(["print-ir", CliRunner.Example("llama.arch"), "--weights", dir, .. extra]);
            Assert.True(r.ExitCode == 0, r.Err);
            return r.Out;
        }
        finally { Directory.Delete(dir, true); }
    }

    private const string Tiny = "\"vocab_size\": 32, \"hidden_size\": 16, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"intermediate_size\": 24";

    [Fact]
    public void NullEosMeansNoEosAndAListIsKept()
    {
        Assert.Contains("hyper eos_token_id = []", PrintIr("{" + Tiny + ", \"eos_token_id\": null}"));
        Assert.Contains("hyper eos_token_id = [5,7]", PrintIr("{" + Tiny + ", \"eos_token_id\": [5, 7]}"));
        Assert.Contains("hyper eos_token_id = [2]", PrintIr("{" + Tiny + "}"));   // absent: the .arch default
    }

    [Fact]
    public void NullScalarFallsBackToDefaultExpression()
    {
        // head_dim: null (Mixtral's config) means "derive it": dim // n_heads.
        Assert.Contains("hyper head_dim = 8", PrintIr("{" + Tiny + ", \"head_dim\": null}"));
    }

    [Fact]
    public void OlderRopeThetaSpellingAndTiedHead()
    {
        var ir = PrintIr("{" + Tiny + ", \"rope_theta\": 500000.0, \"rope_scaling\": null, \"tie_word_embeddings\": true, \"attention_bias\": true}");
        Assert.Contains("theta=500000.0", ir);
        Assert.DoesNotContain("lm_head.weight", ir);
        Assert.Contains("model.layers.0.self_attn.q_proj.bias", ir);
    }
}
