using System.Text.Json;
using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Kernels;
using ModelCompiler.Tests.Cli;

namespace ModelCompiler.Tests.CpuTarget;

/// <summary>
/// One compiled model serves AVX-512, AVX2 and plain machines: mc runs in a subprocess with the runtime's
/// intrinsics switched off and gives the same logits as with every instruction set on, and as the Hugging Face oracle.
/// AVX-512 off: DOTNET_EnableAVX512F=0 is the knob's name up to .NET 9; .NET 10 ignores it and reads
/// DOTNET_EnableAVX512=0, so both are set (the test checks that the GEMM really ran its Vector256 kernels).
/// All hardware intrinsics off (DOTNET_EnableHWIntrinsic=0): the scalar kernels.
/// </summary>
public sealed class IsaFallbackTests
{
    public static TheoryData<string, string> Settings() => new()
    {
        { "DOTNET_EnableAVX512F=0 DOTNET_EnableAVX512=0", "Vector256" },
        { "DOTNET_EnableHWIntrinsic=0", "Scalar" },
    };

    private static float[] EvalLogits(IReadOnlyDictionary<string, string> environment)
    {
        var oracle = CliRunner.Oracle("llama");
        var output = CliRunner.TempFile("isa.safetensors");
        try
        {
            var r = CliRunner.RunProcessWith(environment, "eval", CliRunner.Example("llama.arch"), "--weights", oracle,
                "--inputs", Path.Combine(oracle, "reference.safetensors"), "--out", output, "--target", "cpu");
            Assert.True(r.ExitCode == 0, r.Err);
            using var store = WeightStore.Open(output);
            return store.ReadFloat32("logits");
        }
        finally { File.Delete(output); }
    }

    [Theory]
    [MemberData(nameof(Settings))]
    public void SameLogitsWithTheWideInstructionsOff(string variables, string expectedIsa)
    {
        var off = variables.Split(' ').Select(v => v.Split('=')).ToDictionary(v => v[0], v => v[1], StringComparer.Ordinal);
        // The subprocess really took the narrower path: mc bench reports the GEMM's ISA.
        var bench = CliRunner.RunProcessWith(off, "bench", CliRunner.Example("llama.arch"), "--set", "dim=32", "n_layers=1", "n_heads=2",
            "n_kv_heads=1", "ffn_dim=48", "vocab=64", "--prompt", "4", "--gen", "1", "--reps", "1", "--json");
        Assert.True(bench.ExitCode == 0, bench.Err);
        if (expectedIsa == "Vector256" && !Gemm.IsSupported(GemmIsa.Vector256)) expectedIsa = "Scalar";   // a machine without AVX2
        Assert.Equal(expectedIsa, JsonDocument.Parse(bench.Out).RootElement.GetProperty("isa").GetString());

        var narrow = EvalLogits(off);
        var wide = EvalLogits(new Dictionary<string, string>());
        using var reference = WeightStore.Open(Path.Combine(CliRunner.Oracle("llama"), "reference.safetensors"));
        var oracle = reference.ReadFloat32("logits");
        double scale = oracle.Max(v => Math.Abs(v));
        Assert.Equal(oracle.Length, narrow.Length);
        Assert.True(narrow.Zip(wide, (a, b) => Math.Abs(a - b)).Max() <= 1e-4 * scale, $"{variables}: logits differ from the default run's");
        Assert.True(narrow.Zip(oracle, (a, b) => Math.Abs(a - b)).Max() <= 1e-4 * scale, $"{variables}: logits differ from the oracle's");
    }

    [Fact]
    public void ScalarGemmMatchesTheWidestInProcess()
    {
        var random = new Random(7);
        int m = 19, k = 70, n = 45;
        var x = Enumerable.Range(0, m * k).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        var w = Enumerable.Range(0, n * k).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        var packed = PackedWeight.Pack(w, n, k);
        var scalar = new float[m * n];
        var best = new float[m * n];
        Gemm.Linear(x, m, packed, scalar, options: new GemmOptions { Isa = GemmIsa.Scalar, Threading = GemmThreading.Single });
        Gemm.Linear(x, m, packed, best);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double expected = 0;
                for (int t = 0; t < k; t++) expected += (double)x[i * k + t] * w[j * k + t];
                Assert.Equal(expected, scalar[i * n + j], 1e-4);
                Assert.Equal(expected, best[i * n + j], 1e-4);
            }
    }
}
