using System.Text.Json;
using ModelCompiler.Tests.Cli;

namespace ModelCompiler.Tests.CpuTarget;

/// <summary>
/// Prefill memory is linear in the prompt: attention never holds the seq×seq scores. Measured in a fresh mc process
/// (mc bench, prefill only): the growth of the resident set's high-water mark (Linux VmHWM) over the resident set
/// after compiling and loading the weights. A materialised score matrix (one head: 8192² floats = 256 MB at 8192 tokens)
/// would grow it about 4× from 4096 to 8192 tokens; activations, logits and the KV cache grow 2×.
/// </summary>
public sealed class PrefillMemoryTests
{
    private static long Growth(int tokens)
    {
        // One head of 32: the attention's flops (quadratic in the prompt) stay small; 600 s for a loaded 2-core CI box.
        var r = CliRunner.RunProcessWith(new Dictionary<string, string>(), 600, "bench", CliRunner.Example("llama.arch"), "--set", "dim=32", "n_layers=2", "n_heads=1", "n_kv_heads=1",
            "ffn_dim=64", "vocab=128", "max_positions=8192", "--prompt", tokens.ToString(), "--gen", "0", "--reps", "1", "--threads", "1", "--json");
        Assert.True(r.ExitCode == 0, r.Err);
        var json = JsonDocument.Parse(r.Out).RootElement;
        return json.GetProperty("peak_resident_bytes").GetInt64() - json.GetProperty("resident_bytes_before").GetInt64();
    }

    [Fact]
    public void PeakMemoryGrowsAtMostTwoPointTwoTimesFrom4096To8192Tokens()
    {
        long at4096 = Growth(4096), at8192 = Growth(8192);
        Assert.True(at4096 > 0, $"no growth measured at 4096 tokens ({at4096} bytes)");
        double ratio = (double)at8192 / at4096;
        Assert.True(ratio <= 2.2, $"prefill peak memory grew {ratio:F2}× ({at4096 / 1e6:F1} MB → {at8192 / 1e6:F1} MB) from 4096 to 8192 tokens");
    }
}
