using System.Buffers.Binary;
using System.Text;
using ModelCompiler.Runtime;
using static ModelCompiler.Tests.Runtime.SafetensorsTestFiles;

namespace ModelCompiler.Tests.Runtime;

public sealed class SafetensorsTests
{
    [Fact]
    public void RoundTripsEveryDTypeWithShapesAndMetadata()
    {
        using var dir = new TempDir();
        string path = dir.File("all.safetensors");
        var halves = new[] { (Half)1.0, (Half)(-2.5), Half.MaxValue };
        var bf16Bits = new ushort[] { 0x4049, 0x3F80, 0xC000 }; // 3.140625, 1.0, -2.0
        var tensors = new[]
        {
            TensorData.FromFloat32("f32", [2, 3], [1.5f, -0f, float.MaxValue, float.Epsilon, -7.25f, 1e-3f]),
            TensorData.FromFloat64("f64", [2], [Math.PI, -1e300]),
            new TensorData("f16", DType.F16, [3], LittleEndian(halves, 2, (b, h) => BinaryPrimitives.WriteHalfLittleEndian(b, h))),
            new TensorData("bf16", DType.BF16, [3, 1], LittleEndian(bf16Bits, 2, (b, v) => BinaryPrimitives.WriteUInt16LittleEndian(b, v))),
            TensorData.FromInt64("i64", [4], [long.MinValue, -1, 0, long.MaxValue]),
            new TensorData("i32", DType.I32, [2], LittleEndian(new[] { int.MinValue, 123456 }, 4, (b, v) => BinaryPrimitives.WriteInt32LittleEndian(b, v))),
            new TensorData("i8", DType.I8, [3], [0x80, 0xFF, 0x7F]),
            new TensorData("u8", DType.U8, [3], [0, 200, 255]),
            new TensorData("bool", DType.Bool, [1, 2], [1, 0]),
            TensorData.FromFloat32("scalar", [], [42f]),
            TensorData.FromFloat32("empty", [0, 3], []),
            TensorData.FromInt64("empty_ids", [2, 0], []),
        };
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "héllo \"quoted\"\nnext line" };

        SafetensorsWriter.Write(path, tensors.Reverse(), metadata);

        using var file = SafetensorsFile.Open(path);
        Assert.Equal(path, file.Path);
        Assert.Equal(tensors.Select(t => t.Name).Order(StringComparer.Ordinal), file.Tensors.Select(t => t.Name));
        Assert.Equal(metadata, file.Metadata);
        foreach (var expected in tensors)
        {
            var info = file.Get(expected.Name);
            Assert.True(file.Contains(expected.Name));
            Assert.Equal(expected.DType, info.DType);
            Assert.Equal(expected.Shape, info.Shape);
            Assert.Equal(expected.Data.Length, info.ByteLength);
            Assert.Equal(expected.Data, file.GetBytes(expected.Name).ToArray());
        }

        Assert.Equal(new[] { 1.5f, -0f, float.MaxValue, float.Epsilon, -7.25f, 1e-3f }, file.ReadFloat32("f32"));
        Assert.Equal(new[] { Math.PI, -1e300 }, file.ReadFloat64("f64"));
        Assert.Equal(new[] { 1.0f, -2.5f, 65504f }, file.ReadFloat32("f16"));
        Assert.Equal(new[] { 3.140625f, 1f, -2f }, file.ReadFloat32("bf16"));
        Assert.Equal(new[] { long.MinValue, -1, 0, long.MaxValue }, file.ReadInt64("i64"));
        Assert.Equal(new long[] { int.MinValue, 123456 }, file.ReadInt64("i32"));
        Assert.Equal(new long[] { -128, -1, 127 }, file.ReadInt64("i8"));
        Assert.Equal(new long[] { 0, 200, 255 }, file.ReadInt64("u8"));
        Assert.Equal(new long[] { 1, 0 }, file.ReadInt64("bool"));

        var scalar = file.Get("scalar");
        Assert.Empty(scalar.Shape);
        Assert.Equal(1, scalar.ElementCount);
        Assert.Equal(new[] { 42f }, file.ReadFloat32("scalar"));

        Assert.Equal(0, file.Get("empty").ElementCount);
        Assert.Empty(file.ReadFloat32("empty"));
        Assert.Empty(file.ReadInt64("empty_ids"));
        Assert.True(file.GetBytes("empty").IsEmpty);
    }

    [Fact]
    public void WriterLaysOutAPaddedSortedHeader()
    {
        using var dir = new TempDir();
        string path = dir.File("layout.safetensors");
        SafetensorsWriter.Write(path, [TensorData.FromFloat32("b", [1], [2f]), TensorData.FromFloat32("a", [1], [1f])]);

        byte[] bytes = File.ReadAllBytes(path);
        long headerLength = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0, (8 + headerLength) % 8);
        string header = Encoding.UTF8.GetString(bytes, 8, (int)headerLength);
        Assert.StartsWith("{", header);
        Assert.EndsWith("}", header.TrimEnd(' '));
        Assert.DoesNotContain("__metadata__", header);
        Assert.True(header.IndexOf("\"a\"", StringComparison.Ordinal) < header.IndexOf("\"b\"", StringComparison.Ordinal));
        Assert.Equal(8 + headerLength + 8, bytes.Length);

        using var file = SafetensorsFile.Open(path);
        Assert.Empty(file.Metadata);
        Assert.Equal(8 + headerLength, file.Get("a").DataOffset);
        Assert.Equal(8 + headerLength + 4, file.Get("b").DataOffset);
    }

    [Fact]
    public void ConvertsHalfPrecisionBitPatternsExactly()
    {
        using var dir = new TempDir();
        string path = dir.File("half.safetensors");
        ushort[] f16 = [0x3C00, 0xC100, 0x7BFF, 0x0001, 0x8000, 0xFC00, 0x7E00];
        ushort[] bf16 = [0x4049, 0x3F80, 0xC020, 0x7F7F, 0x0001, 0xFF80];
        SafetensorsWriter.Write(path,
        [
            new TensorData("f16", DType.F16, [f16.Length], LittleEndian(f16, 2, (b, v) => BinaryPrimitives.WriteUInt16LittleEndian(b, v))),
            new TensorData("bf16", DType.BF16, [bf16.Length], LittleEndian(bf16, 2, (b, v) => BinaryPrimitives.WriteUInt16LittleEndian(b, v))),
        ]);

        using var file = SafetensorsFile.Open(path);
        float[] halves = file.ReadFloat32("f16");
        Assert.Equal(1.0f, halves[0]);
        Assert.Equal(-2.5f, halves[1]);
        Assert.Equal(65504f, halves[2]);
        Assert.Equal(MathF.Pow(2, -24), halves[3]); // smallest subnormal
        Assert.Equal(0x8000_0000, BitConverter.SingleToUInt32Bits(halves[4])); // -0
        Assert.Equal(float.NegativeInfinity, halves[5]);
        Assert.True(float.IsNaN(halves[6]));
        Assert.Equal(65504.0, file.ReadFloat64("f16")[2]);

        float[] brains = file.ReadFloat32("bf16");
        Assert.Equal(3.140625f, brains[0]);
        Assert.Equal(1.0f, brains[1]);
        Assert.Equal(-2.5f, brains[2]);
        Assert.Equal(BitConverter.UInt32BitsToSingle(0x7F7F_0000), brains[3]); // largest finite bf16
        Assert.Equal(BitConverter.UInt32BitsToSingle(0x0001_0000), brains[4]);
        Assert.Equal(float.NegativeInfinity, brains[5]);
        Assert.Equal(3.140625, file.ReadFloat64("bf16")[0]);
    }

    [Fact]
    public void ReadsTheLlamaOracle()
    {
        string path = OraclePath("llama");
        using var file = SafetensorsFile.Open(path);
        Assert.Equal(21, file.Tensors.Count);
        Assert.Equal("pt", file.Metadata["format"]);
        var names = file.Tensors.Select(t => t.Name).ToList();
        Assert.Equal(names.Order(StringComparer.Ordinal), names);

        var kProj = file.Get("model.layers.0.self_attn.k_proj.weight");
        Assert.Equal(DType.F32, kProj.DType);
        Assert.Equal(new long[] { 32, 64 }, kProj.Shape);
        Assert.Equal(32 * 64 * 4, kProj.ByteLength);
        float[] values = file.ReadFloat32(kProj.Name);
        Assert.Equal(32 * 64, values.Length);
        Assert.Equal(0xBD5BB89Du, BitConverter.SingleToUInt32Bits(values[0])); // from Python's struct.unpack
        Assert.Equal(values.Select(v => (double)v), file.ReadFloat64(kProj.Name));
    }

    [Fact]
    public void ReadsTheGpt2Oracle()
    {
        using var file = SafetensorsFile.Open(OraclePath("gpt2"));
        var wte = file.Get("transformer.wte.weight");
        Assert.Equal(new long[] { 256, 64 }, wte.Shape);
        float[] values = file.ReadFloat32(wte.Name);
        Assert.Equal(0xBD530A98u, BitConverter.SingleToUInt32Bits(values[0]));
    }

    [Fact]
    public void MissingTensorIsAFormatErrorNamingFileAndTensor()
    {
        string path = OraclePath("llama");
        using var file = SafetensorsFile.Open(path);
        Assert.False(file.Contains("nope"));
        var error = Assert.Throws<ModelFormatException>(() => file.Get("nope"));
        Assert.Equal($"{path}: no tensor 'nope'", error.Message);
        Assert.Throws<ModelFormatException>(() => file.ReadFloat32("nope"));
    }

    [Theory]
    [InlineData("ids", "I64", "float32")]
    [InlineData("w", "F32", "int64")]
    [InlineData("h", "F16", "int64")]
    public void ReadingAnUnconvertibleDTypeNamesTensorAndDType(string tensor, string dtype, string target)
    {
        using var dir = new TempDir();
        string path = dir.File("small.safetensors");
        WriteSmallValidFile(path);
        using var file = SafetensorsFile.Open(path);
        var error = Assert.Throws<ModelFormatException>(() =>
        {
            if (target == "float32") { file.ReadFloat32(tensor); file.ReadFloat64(tensor); }
            else file.ReadInt64(tensor);
        });
        AssertOneLineNaming(error, "small.safetensors", $"'{tensor}'", dtype, target);
        if (target == "float32") Assert.Throws<ModelFormatException>(() => file.ReadFloat64(tensor));
    }

    [Fact]
    public void WriterRejectsDataThatDoesNotMatchTheShape()
    {
        using var dir = new TempDir();
        string path = dir.File("bad.safetensors");

        var wrongLength = Assert.Throws<McException>(() =>
            SafetensorsWriter.Write(path, [new TensorData("x", DType.F32, [2, 2], new byte[12])]));
        Assert.Contains("'x'", wrongLength.Message);

        var duplicate = Assert.Throws<McException>(() =>
            SafetensorsWriter.Write(path, [TensorData.FromFloat32("x", [1], [1f]), TensorData.FromFloat32("x", [1], [2f])]));
        Assert.Contains("duplicate", duplicate.Message);

        Assert.Throws<McException>(() => SafetensorsWriter.Write(path, [new TensorData("x", DType.F32, [-1], [])]));
        Assert.Throws<McException>(() => SafetensorsWriter.Write(path, [new TensorData("__metadata__", DType.U8, [0], [])]));
        Assert.Throws<McException>(() => TensorData.FromFloat32("x", [3], [1f, 2f]));
        Assert.False(File.Exists(path)); // validation happens before the file is created
    }

    private static byte[] LittleEndian<T>(T[] values, int size, Action<Span<byte>, T> write)
    {
        var bytes = new byte[values.Length * size];
        for (int i = 0; i < values.Length; i++) write(bytes.AsSpan(i * size), values[i]);
        return bytes;
    }
}
