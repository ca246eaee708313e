using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Tests.Cli;

/// <summary>
/// <c>mc eval --inputs</c> with Hugging Face's <c>attention_mask</c> ([batch, seq], 1 token, 0 padding): a batch of two
/// oracle sequences, one right-padded and one left-padded, gives at every unpadded position the logits of running that
/// sequence alone (within 1e-4 relative), on a decoder (LLaMA) and an encoder (BERT, with token_type_ids), on the
/// interpreter and the cpu target; padded positions are 0. Bad masks are one-line errors naming the tensor.
/// </summary>
public class AttentionMaskTests
{
    private const long Pad = 0;

    /// <summary>Row 0: the first 9 tokens of the oracle's row 0, then 3 pads. Row 1: 4 pads, then the first 8 of row 1.</summary>
    private static readonly (int Start, int Length)[] Rows = [(0, 9), (4, 8)];

    private const int Seq = 12;

    private static long[] Take(long[] values, int row, int length) => values.Skip(row * Seq).Take(length).ToArray();

    /// <summary>Writes the padded batch (and each row alone) from the oracle's inputs; returns the padded file and the per-row files.</summary>
    private static (string Padded, string[] Alone) WriteInputs(string family, long[]? mask = null, long[]? maskShape = null)
    {
        using var reference = SafetensorsFile.Open(Path.Combine(CliRunner.Oracle(family), "reference.safetensors"));
        var names = new[] { "input_ids", "token_type_ids" }.Where(reference.Contains).ToArray();
        var padded = new List<TensorData>();
        var alone = Rows.Select(_ => new List<TensorData>()).ToArray();
        foreach (var name in names)
        {
            var values = reference.ReadInt64(name);
            Assert.Equal([2, Seq], reference.Get(name).Shape);
            var batch = Enumerable.Repeat(Pad, 2 * Seq).ToArray();
            for (int r = 0; r < Rows.Length; r++)
            {
                var tokens = Take(values, r, Rows[r].Length);
                tokens.CopyTo(batch, r * Seq + Rows[r].Start);
                alone[r].Add(TensorData.FromInt64(name, [1, tokens.Length], tokens));
            }
            padded.Add(TensorData.FromInt64(name, [2, Seq], batch));
        }
        if (mask is null)
        {
            mask = new long[2 * Seq];
            for (int r = 0; r < Rows.Length; r++)
                for (int s = 0; s < Rows[r].Length; s++) mask[r * Seq + Rows[r].Start + s] = 1;
        }
        padded.Add(TensorData.FromInt64("attention_mask", maskShape ?? [2, Seq], mask));
        var paddedPath = CliRunner.TempFile("padded.safetensors");
        SafetensorsWriter.Write(paddedPath, padded);
        var alonePaths = alone.Select((tensors, r) =>
        {
            var path = CliRunner.TempFile($"row{r}.safetensors");
            SafetensorsWriter.Write(path, tensors);
            return path;
        }).ToArray();
        return (paddedPath, alonePaths);
    }

    private static float[] Eval(string family, string inputs, string target, out long[] shape)
    {
        var output = CliRunner.TempFile("logits.safetensors");
        try
        {
            var result = CliRunner.Run("eval", CliRunner.Oracle(family), "--inputs", inputs, "--out", output, "--target", target);
            Assert.True(result.ExitCode == 0, result.Err);
            using var file = SafetensorsFile.Open(output);
            shape = file.Get("logits").Shape;
            return file.ReadFloat32("logits");
        }
        finally { File.Delete(output); }
    }

    [Theory]
    [InlineData("llama", "interpreter")]
    [InlineData("llama", "cpu")]
    [InlineData("bert", "interpreter")]
    [InlineData("bert", "cpu")]
    public void PaddedRowsGiveTheLogitsOfEachSequenceAlone(string family, string target)
    {
        var (padded, alone) = WriteInputs(family);
        try
        {
            var batch = Eval(family, padded, target, out var shape);
            long vocab = shape[^1];
            Assert.Equal([2, Seq, vocab], shape);
            for (int r = 0; r < Rows.Length; r++)
            {
                var single = Eval(family, alone[r], target, out var singleShape);
                Assert.Equal([1, Rows[r].Length, vocab], singleShape);
                double scale = single.Max(Math.Abs), worst = 0;
                for (int s = 0; s < Seq; s++)
                {
                    var got = batch.AsSpan((int)((r * Seq + s) * vocab), (int)vocab);
                    int t = s - Rows[r].Start;
                    if (t < 0 || t >= Rows[r].Length)
                    {
                        Assert.True(got.ToArray().All(x => x == 0), $"row {r}, padded position {s}: logits are not 0");
                        continue;
                    }
                    var want = single.AsSpan((int)(t * vocab), (int)vocab);
                    for (int v = 0; v < vocab; v++) worst = Math.Max(worst, Math.Abs(got[v] - want[v]));
                }
                Assert.True(worst / scale <= 1e-4, $"{family} row {r}: padded logits differ from the sequence alone by {worst / scale:E3}");
            }
        }
        finally
        {
            File.Delete(padded);
            foreach (var f in alone) File.Delete(f);
        }
    }

    public static TheoryData<long[], long[], string> BadMasks() => new()
    {
        { Enumerable.Repeat(1L, 2 * 11).ToArray(), [2, 11], "tensor 'attention_mask' is [2, 11]; expected input_ids' shape [2, 12]" },
        { Enumerable.Repeat(1L, 2 * Seq).Select((v, i) => i == 5 ? 2 : v).ToArray(), [2, Seq], "tensor 'attention_mask' holds 2 at [0, 5]" },
        { Enumerable.Repeat(1L, 2 * Seq).Select((v, i) => i >= Seq ? 0 : v).ToArray(), [2, Seq], "tensor 'attention_mask' row 1 masks every token" },
    };

    [Theory]
    [MemberData(nameof(BadMasks))]
    public void BadMasksAreOneLineErrorsNamingTheTensor(long[] mask, long[] shape, string message)
    {
        var (padded, alone) = WriteInputs("llama", mask, shape);
        try
        {
            var output = CliRunner.TempFile("logits.safetensors");
            var result = CliRunner.Run("eval", CliRunner.Oracle("llama"), "--inputs", padded, "--out", output);
            Assert.Equal(1, result.ExitCode);
            var lines = result.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.True(lines.Length == 1, result.Err);
            Assert.Contains(message, lines[0]);
            Assert.Contains(padded, lines[0]);
            Assert.False(File.Exists(output));
        }
        finally
        {
            File.Delete(padded);
            foreach (var f in alone) File.Delete(f);
        }
    }
}
