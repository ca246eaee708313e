using System.Text.Json;
using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Tests.Cli;

public class StatsTests
{
    /// <summary>
    /// On every oracle folder, the total equals the parameter count PyTorch reported when the oracle was
    /// made (oracle.json's params, tied tensors counted once), or else the element count of model.safetensors.
    /// </summary>
    [Theory]
    [MemberData(nameof(Oracles.ImportHfTests.Families), MemberType = typeof(Oracles.ImportHfTests))]
    public void TotalParametersEqualTheOracles(string family)
    {
        var oracle = CliRunner.Oracle(family);
        using var meta = JsonDocument.Parse(File.ReadAllText(Path.Combine(oracle, "oracle.json")));
        long expected;
        if (meta.RootElement.TryGetProperty("params", out var p)) expected = p.GetInt64();
        else
        {
            using var file = SafetensorsFile.Open(Path.Combine(oracle, "model.safetensors"));
            expected = file.Tensors.Sum(t => t.ElementCount);
        }
        var r = CliRunner.Run("stats", oracle, "--json");
        Assert.True(r.ExitCode == 0, r.Err);
        using var json = JsonDocument.Parse(r.Out);
        Assert.Equal(expected, json.RootElement.GetProperty("params").GetProperty("total").GetInt64());
        Assert.True(json.RootElement.GetProperty("flops_per_token").GetProperty("decode").GetDouble() > 0);
        Assert.True(json.RootElement.TryGetProperty("kv_bytes_per_token", out _));
        Assert.True(json.RootElement.TryGetProperty("weight_bytes", out _));
    }

    /// <summary>FLOPs and KV bytes of a one-layer model, derived by hand.</summary>
    [Fact]
    public void FlopsAndKvBytesOfATinyAttentionLayer()
    {
        // x[batch, seq, 8] -> q,k,v = x @ W (8x8 each, 2 heads of 4) -> causal attention -> out.
        var g = new Graph("tiny");
        var b = new GraphBuilder(g);
        var x = b.Input("x", new TensorType(DType.F32, Dim.Sym("batch"), Dim.Sym("seq"), 8));
        Node Proj(string name) => b.Reshape(b.Linear(x, b.Weight(name, new TensorType(DType.F32, 8, 8))), Dim.Sym("batch"), Dim.Sym("seq"), 2, 4);
        var att = b.Add(OpKind.Attention, [Proj("q"), Proj("k"), Proj("v")], Attrs.Empty.With("mask", "causal").With("scale", 0.5));
        g.SetOutput("y", att);
        var report = GraphStatistics.Compute(g, sequenceLength: 10);
        Assert.Equal(3 * 64, report.TotalParameters);
        // Linear: 3 * 2*8*8 = 384 per token. Causal attention at S=10 sees 1+2+...+10 = 55 query-key pairs,
        // each 2*H*(D+Dv) = 32 FLOPs: 1760 in all, 176 per token.
        Assert.Equal(384 + 176, report.PrefillFlopsPerToken, 6);
        // One more token attends to all 11 keys: 11 * 32 = 352.
        Assert.Equal(384 + 352, report.DecodeFlopsPerToken, 6);
        Assert.Equal((2 * 4 + 2 * 4) * 4, report.KvBytesPerToken);
    }

    [Fact]
    public void TextOutputIsATable()
    {
        var r = CliRunner.Run("stats", CliRunner.Example("gpt2.arch"), "--set", "n_layers=1", "--seq", "128");
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Contains("FLOPs per token, prefill of 128", r.Out);
    }
}
