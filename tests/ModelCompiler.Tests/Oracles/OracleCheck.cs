using System.Globalization;
using ModelCompiler.Cli;
using ModelCompiler.Runtime;

namespace ModelCompiler.Tests.Oracles;

/// <summary>
/// Runs <c>mc eval</c> exactly as a user would on an oracle folder (tests/oracles/&lt;family&gt;, made
/// by Hugging Face transformers) and checks its contract: logits within 1e-4 of the reference
/// relative to the largest |value|, and the greedy tokens exactly where the oracle has them.
/// </summary>
public static class OracleCheck
{
    public const double Tolerance = 1e-4;

    public static string Folder(string family) => Path.Combine(AppContext.BaseDirectory, "oracles", family);

    public static string Example(string arch) => Path.Combine(AppContext.BaseDirectory, "examples", arch);

    /// <param name="model">an .arch file or the oracle folder itself</param>
    /// <param name="weights">--weights, or null to let mc take the model folder</param>
    /// <param name="extraArgs">more arguments for mc eval (e.g. <c>--target cpu</c>)</param>
    /// <returns>the relative logits error</returns>
    public static double Run(string family, string model, string? weights, params string[] extraArgs)
    {
        var folder = Folder(family);
        var reference = Path.Combine(folder, "reference.safetensors");
        using var refFile = SafetensorsFile.Open(reference);
        var args = new List<string> { "eval", model, "--inputs", reference };
        if (weights is not null) args.AddRange(["--weights", weights]);
        long[]? expectedGreedy = refFile.Contains("greedy_ids") ? refFile.ReadInt64("greedy_ids") : null;
        if (expectedGreedy is not null)
        {
            // Decoder-only: row 0 of input_ids extended; encoder-decoder: the decoder start token extended.
            long prefix = refFile.Contains("decoder_input_ids") ? 1 : refFile.Get("input_ids").Shape[1];
            args.AddRange(["--generate", (expectedGreedy.Length - prefix).ToString(CultureInfo.InvariantCulture)]);
        }
        var outPath = Path.Combine(Path.GetTempPath(), $"mc-oracle-{family}-{Guid.NewGuid():N}.safetensors");
        args.AddRange(["--out", outPath]);
        args.AddRange(extraArgs);
        try
        {
            var stdout = new StringWriter();
            var stderr = new StringWriter();
            int code = McApp.Run(args.ToArray(), stdout, stderr);
            Assert.True(code == 0, $"mc {string.Join(" ", args)} exited with {code}: {stderr}");

            using var result = SafetensorsFile.Open(outPath);
            Assert.Equal(DType.F32, result.Get("logits").DType);
            Assert.Equal(refFile.Get("logits").Shape, result.Get("logits").Shape);
            var expected = refFile.ReadFloat32("logits");
            var actual = result.ReadFloat32("logits");
            double maxRef = expected.Max(x => Math.Abs((double)x));
            double maxDiff = expected.Zip(actual, (e, a) => Math.Abs((double)e - a)).Max();
            double relative = maxDiff / maxRef;
            Assert.True(relative <= Tolerance, $"{family}: max|logits - ref| / max|ref| = {relative:E3} > {Tolerance:E0}");
            if (expectedGreedy is not null)
            {
                Assert.Equal(DType.I64, result.Get("greedy_ids").DType);
                Assert.Equal(new long[] { 1, expectedGreedy.Length }, result.Get("greedy_ids").Shape);
                Assert.Equal(expectedGreedy, result.ReadInt64("greedy_ids"));
            }
            return relative;
        }
        finally
        {
            File.Delete(outPath);
        }
    }
}
