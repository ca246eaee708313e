using System.Text.Json;
using ModelCompiler.Tests.Cli;

namespace ModelCompiler.Tests.CpuTarget;

/// <summary><c>mc bench</c> at a tiny size: it runs and reports pp and tg (no timing assertions).</summary>
public sealed class BenchCommandTests
{
    private static readonly string[] Tiny = ["--set", "dim=64", "n_layers=1", "n_heads=4", "n_kv_heads=2", "ffn_dim=160", "vocab=256"];

    [Fact]
    public void JsonReportsPromptAndGenerationRates()
    {
        var r = CliRunner.Run(["bench", CliRunner.Example("llama.arch"), .. Tiny, "--prompt", "8", "--gen", "4", "--reps", "2", "--threads", "1", "--cache", "contiguous", "--json"]);
        Assert.Equal(0, r.ExitCode);
        using var json = JsonDocument.Parse(r.Out);
        Assert.True(json.RootElement.GetProperty("pp_tokens_per_s").GetDouble() > 0);
        Assert.True(json.RootElement.GetProperty("tg_tokens_per_s").GetDouble() > 0);
        var kernels = json.RootElement.GetProperty("kernels").EnumerateArray().ToList();
        // Per-kernel times for both phases: the attention and the fused GEMMs are among them, every call counted.
        foreach (var phase in new[] { "pp", "tg" })
        {
            var own = kernels.Where(k => k.GetProperty("phase").GetString() == phase).ToList();
            Assert.Contains(own, k => k.GetProperty("kernel").GetString() == "attention" && k.GetProperty("calls").GetInt64() == 2 * (phase == "pp" ? 1 : 4));
            Assert.Contains(own, k => k.GetProperty("kernel").GetString()!.StartsWith("fused_linear[", StringComparison.Ordinal));
            Assert.All(own, k => Assert.True(k.GetProperty("total_ms").GetDouble() >= 0));
            // At this size most of a phase is the code around the kernels, so only the bounds are sure.
            Assert.InRange(own.Sum(k => k.GetProperty("percent").GetDouble()), 1e-6, 100.5);
        }
        Assert.Equal(8, json.RootElement.GetProperty("prompt").GetInt32());
        Assert.Equal(1, json.RootElement.GetProperty("threads").GetInt32());
        Assert.Equal(0, ModelCompiler.Runtime.Kernels.KernelThreading.MaxThreads);   // restored
    }

    [Fact]
    public void TextIsALlamaBenchStyleTable()
    {
        var r = CliRunner.Run(["bench", CliRunner.Example("llama.arch"), .. Tiny, "--prompt", "4", "--gen", "2", "--reps", "1"]);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("| pp4 |", r.Out);
        Assert.Contains("| tg2 |", r.Out);
        Assert.Contains("| pp | paged_attention | 1 |", r.Out);   // the default cache is paged
    }

    [Fact]
    public void DepthFillsTheCacheBeforeEachTestAsLlamaBenchDoes()
    {
        // Both caches: the tests run at the given depth and say so; without one they start empty (llama-bench's pp/tg).
        foreach (var cache in new[] { "paged", "contiguous" })
        {
            var r = CliRunner.Run(["bench", CliRunner.Example("llama.arch"), .. Tiny, "--prompt", "4", "--gen", "3", "--depth", "5", "--reps", "1", "--cache", cache, "--json"]);
            Assert.Equal(0, r.ExitCode);
            using var json = JsonDocument.Parse(r.Out);
            Assert.Equal(5, json.RootElement.GetProperty("depth").GetInt32());
            Assert.True(json.RootElement.GetProperty("tg_tokens_per_s").GetDouble() > 0);
            // The decode steps are the tg phase's attention calls: one per layer and step, none from the depth's prefill.
            var tg = json.RootElement.GetProperty("kernels").EnumerateArray().Where(k => k.GetProperty("phase").GetString() == "tg").ToList();
            Assert.Contains(tg, k => k.GetProperty("kernel").GetString()!.Contains("attention", StringComparison.Ordinal) && k.GetProperty("calls").GetInt64() == 3);
        }
        var text = CliRunner.Run(["bench", CliRunner.Example("llama.arch"), .. Tiny, "--prompt", "4", "--gen", "2", "--depth", "3", "--reps", "1"]);
        Assert.Equal(0, text.ExitCode);
        Assert.Contains("| pp4 @ d3 |", text.Out);
        Assert.Contains("| tg2 @ d3 |", text.Out);
        var negative = CliRunner.Run(["bench", CliRunner.Example("llama.arch"), .. Tiny, "--depth", "-1"]);
        Assert.Equal(1, negative.ExitCode);
        Assert.Contains("--depth -1", negative.Err);
    }

    [Fact]
    public void SavedWeightsAreTheSeededOnesEveryTime()
    {
        string a = CliRunner.TempFile("a.safetensors"), b = CliRunner.TempFile("b.safetensors"), c = CliRunner.TempFile("c.safetensors");
        try
        {
            foreach (var (path, seed) in new[] { (a, "0"), (b, "0"), (c, "1") })
                Assert.Equal(0, CliRunner.Run(["bench", CliRunner.Example("llama.arch"), .. Tiny, "--seed", seed, "--save-weights", path]).ExitCode);
            Assert.Equal(File.ReadAllBytes(a), File.ReadAllBytes(b));
            Assert.NotEqual(File.ReadAllBytes(a), File.ReadAllBytes(c));
            using var store = ModelCompiler.Runtime.WeightStore.Open(a);
            Assert.Contains("model.layers.0.self_attn.q_proj.weight", store.Names);
            Assert.Contains("lm_head.weight", store.Names);
            var q = store.ReadFloat64("model.layers.0.self_attn.q_proj.weight");
            Assert.Equal(64 * 64, q.Length);
            Assert.All(q, v => Assert.InRange(v, -0.05, 0.05));
            Assert.True(q.Distinct().Count() > 4000);
        }
        finally { File.Delete(a); File.Delete(b); File.Delete(c); }
    }

    [Fact]
    public void BatchedPagedDecodeCountsEverySequencesTokens()
    {
        var r = CliRunner.Run(["bench", CliRunner.Example("llama.arch"), .. Tiny, "--prompt", "6", "--gen", "3", "--reps", "1", "--batch", "3", "--json"]);
        Assert.Equal(0, r.ExitCode);
        using var json = JsonDocument.Parse(r.Out);
        Assert.Equal("paged", json.RootElement.GetProperty("cache").GetString());
        Assert.Equal(3, json.RootElement.GetProperty("batch").GetInt32());
        Assert.True(json.RootElement.GetProperty("tg_tokens_per_s").GetDouble() > 0);
        // One sequence's decode is timed in the same run, and the speedup is the ratio of the two medians.
        double single = json.RootElement.GetProperty("tg_batch1_tokens_per_s").GetDouble();
        Assert.True(single > 0);
        double ratio = json.RootElement.GetProperty("tg_tokens_per_s").GetDouble() / single;
        Assert.InRange(json.RootElement.GetProperty("batch_speedup").GetDouble(), ratio * 0.99, ratio * 1.01);
        var contiguous = CliRunner.Run(["bench", CliRunner.Example("llama.arch"), .. Tiny, "--prompt", "4", "--gen", "2", "--reps", "1", "--cache", "contiguous"]);
        Assert.Equal(0, contiguous.ExitCode);
        Assert.Contains("contiguous KV cache", contiguous.Out);
        Assert.Equal(1, CliRunner.Run(["bench", CliRunner.Example("llama.arch"), .. Tiny, "--batch", "2", "--cache", "contiguous"]).ExitCode);
    }

    [Fact]
    public void WorkloadPrintsThePoolsWaste()
    {
        var r = CliRunner.Run(["bench", CliRunner.Example("llama.arch"), .. Tiny, "--workload", "3", "--json"]);
        Assert.Equal(0, r.ExitCode);
        using var json = JsonDocument.Parse(r.Out);
        Assert.Equal(3, json.RootElement.GetProperty("workload_requests").GetInt32());
        double wasted = json.RootElement.GetProperty("wasted_fraction").GetDouble();
        Assert.InRange(wasted, 0.0, 0.04);
        Assert.True(json.RootElement.GetProperty("generated_tokens").GetInt64() >= 3 * 16);
    }
}
