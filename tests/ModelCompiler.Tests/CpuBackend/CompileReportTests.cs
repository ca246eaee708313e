using System.Text.Json;
using System.Text.RegularExpressions;
using ModelCompiler.Tests.Cli;

namespace ModelCompiler.Tests.CpuTarget;

/// <summary><c>mc compile --report</c>: which ops went into which kernel, and why a fusion did not happen.</summary>
public sealed class CompileReportTests
{
    public static TheoryData<string> Zoo() => new(Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "examples"), "*.arch")
        .Select(f => Path.GetFileName(f)!).Order(StringComparer.Ordinal));

    /// <summary>
    /// Every attention the model declares (counted in mc print-ir's unfused IR, an independent reading of the model)
    /// is one tiled online-softmax attention kernel in the report, and no attention was left as matmul → softmax.
    /// </summary>
    [Theory]
    [MemberData(nameof(Zoo))]
    public void EveryAttentionIsOneTiledKernel(string file)
    {
        var ir = CliRunner.Run("print-ir", CliRunner.Example(file));
        Assert.Equal(0, ir.ExitCode);
        int declared = Regex.Matches(ir.Out, @"= attention\b").Count;
        Assert.True(declared > 0, $"{file}: print-ir shows no attention op");

        var r = CliRunner.Run("compile", CliRunner.Example(file), "--report", "--json");
        Assert.True(r.ExitCode == 0, r.Err);
        var report = JsonDocument.Parse(r.Out).RootElement.GetProperty("report");
        var attention = report.GetProperty("kernels").EnumerateArray().Where(k => k.GetProperty("kernel").GetString() == "attention").ToList();
        Assert.Equal(declared, attention.Count);
        Assert.All(attention, k => Assert.StartsWith("tiled attention (online softmax", k.GetProperty("detail").GetString()));
        Assert.DoesNotContain(report.GetProperty("missed").EnumerateArray(), m => m.GetProperty("pattern").GetString() == "attention");
    }

    [Fact]
    public void TextReportListsFusedLinearParts()
    {
        var r = CliRunner.Run("compile", CliRunner.Example("llama.arch"), "--set", "n_layers=1", "dim=64", "n_heads=4", "n_kv_heads=2", "ffn_dim=96", "vocab=100", "--report");
        Assert.True(r.ExitCode == 0, r.Err);
        // q/k/v share the input norm: one GEMM over three concatenated weights with the norm as prologue.
        Assert.Contains("fused_linear[rms_norm+gemm]", r.Out);
        Assert.Contains("<- rms_norm + linear ×3 (concatenated weights)", r.Out);
        Assert.Contains("slice ×2 + silu + mul (gate)", r.Out);
        Assert.Contains("linear + add (residual)", r.Out);
        Assert.Contains("tiled attention (online softmax", r.Out);
    }

    [Fact]
    public void PostNormModelSaysWhyTheNormDidNotFuse()
    {
        // BERT normalises after the residual add; the normalised tensor is the next block's residual too (fused into
        // the output projection's epilogue), so the norm stays a kernel of its own.
        var r = CliRunner.Run("compile", CliRunner.Example("bert.arch"), "--report");
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Matches(@"fuse-norm-linear: %\d+ layer_norm: its result is also the residual, bias or weight of fused_linear %\d+: fusing would normalise twice", r.Out);
        // ... while a pre-norm model fuses every norm but none
        var llama = CliRunner.Run("compile", CliRunner.Example("llama.arch"), "--set", "n_layers=2", "--report");
        Assert.DoesNotContain("fuse-norm-linear:", llama.Out);
    }

    [Fact]
    public void CompileWithoutOutOrReportIsAUsageError()
    {
        var r = CliRunner.Run("compile", CliRunner.Example("llama.arch"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--out", r.Err);
    }
}
