using System.Reflection;
using ModelCompiler.Backends.Cpu;
using ModelCompiler.Backends.Reference;
using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Kernels;
using RefInterpreter = ModelCompiler.Backends.Reference.Interpreter;

namespace ModelCompiler.Tests.CpuTarget;

/// <summary>
/// A checkpoint stored in bf16 or fp16 stays 16-bit in the compiled model: its linear weights are packed in the
/// checkpoint's format (widened in the GEMM's registers), and no fp32 copy of a linear weight outlives LoadWeights.
/// The logits equal the interpreter's on the same (16-bit) values.
/// </summary>
public sealed class Bf16CheckpointTests(TinyLlamaFixture llama) : IClassFixture<TinyLlamaFixture>, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mc-bf16-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData(DType.BF16)]
    [InlineData(DType.F16)]
    public void SixteenBitCheckpointIsPackedInItsFormatAndMatchesTheInterpreter(DType dtype)
    {
        // The fixture's weights rounded to the 16-bit format: the values the checkpoint holds.
        var rounded = llama.Weights.ToDictionary(kv => kv.Key, kv => kv.Value.Select(v => Round(v, dtype)).ToArray());
        var path = Path.Combine(_dir, "model.safetensors");
        SafetensorsWriter.Write(path, llama.Graph.Weights.Select(w =>
        {
            var name = w.Attrs.Str("name");
            var bits = rounded[name].Select(v => dtype == DType.BF16 ? (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16) : BitConverter.HalfToUInt16Bits((Half)v)).ToArray();
            var bytes = new byte[bits.Length * 2];
            Buffer.BlockCopy(bits, 0, bytes, 0, bytes.Length);
            return new TensorData(name, dtype, w.Type.Shape.Select(d => d.Size).ToArray(), bytes);
        }));

        var model = CpuBackend.Instantiate(llama.Artifact);
        using (var store = WeightStore.Open(path)) model.LoadWeights(store);

        var packed = Fields<PackedWeight>(model);
        Assert.NotEmpty(packed);
        var expectedFormat = dtype == DType.BF16 ? WeightFormat.BF16 : WeightFormat.F16;
        Assert.All(packed, p => Assert.Equal(expectedFormat, p.Format));

        // What stays as floats: the embedding table and the norms' weights, never a linear's [N, K] weight.
        long linearElements = llama.Graph.Weights.Where(w => w.Type.Rank == 2 && !w.Attrs.Str("name").Contains("embed", StringComparison.Ordinal))
            .Sum(w => w.Type.Shape.Aggregate(1L, (a, d) => a * d.Size));
        long floatFieldElements = Fields<float[]>(model).Sum(a => a.LongLength);
        long embedding = rounded.Where(kv => kv.Key.Contains("embed", StringComparison.Ordinal)).Sum(kv => kv.Value.LongLength);
        long norms = llama.Graph.Weights.Where(w => w.Type.Rank == 1).Sum(w => w.Type.Shape[0].Size);
        Assert.True(floatFieldElements <= embedding + norms, $"{floatFieldElements} floats kept after loading; the embedding and norms hold {embedding + norms} (linears {linearElements})");

        long[] ids = [7, 1, 99, 4, 250, 31];
        var cpu = model.Forward(new Dictionary<string, (long[], long[])> { ["input_ids"] = ([1, ids.Length], ids) })["logits"];
        var reference = new RefInterpreter(llama.Graph).Run(new Dictionary<string, RefTensor> { ["input_ids"] = RefTensor.FromInts([1, ids.Length], ids) },
            (name, type) => RefTensor.FromFloats(type.Shape.Select(d => d.Size).ToArray(), rounded[name]))["logits"];
        Assert.True(CpuHarness.Difference(reference, HostTensor.FromFloats(cpu.Shape, cpu.Data)) < 1e-4);
    }

    private static float Round(float v, DType dtype) =>
        dtype == DType.BF16 ? BitConverter.UInt32BitsToSingle((uint)PackedWeight.ToBf16Bits(v) << 16) : (float)(Half)v;

    private static List<T> Fields<T>(object model) where T : class =>
        model.GetType().GetFields(BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public)
            .Where(f => f.FieldType == typeof(T)).Select(f => f.GetValue(model) as T).OfType<T>().ToList();
}
