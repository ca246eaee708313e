using System.Buffers.Binary;
using System.Text;
using ModelCompiler.Runtime;
using static ModelCompiler.Tests.Runtime.SafetensorsTestFiles;

namespace ModelCompiler.Tests.Runtime;

/// <summary>Malformed, truncated and hostile files: each must be a one-line ModelFormatException, nothing else.</summary>
public sealed class SafetensorsHostileTests : IDisposable
{
    private const string F32x2 = "\"dtype\": \"F32\", \"shape\": [2]";

    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(7)]
    public void FileShorterThanTheLengthPrefix(int length)
    {
        string path = _dir.File("short.safetensors");
        File.WriteAllBytes(path, new byte[length]);
        AssertOpenFails(path, "too short");
    }

    [Theory]
    [InlineData(1UL << 63)]
    [InlineData(1UL << 40)]
    [InlineData(ulong.MaxValue)]
    [InlineData(1000UL)]
    public void HeaderLengthPastTheEndOfTheFileFailsWithoutAllocating(ulong declared)
    {
        string path = _dir.File("huge.safetensors");
        WriteRaw(path, "{}", dataLength: 16, declaredHeaderLength: declared);
        AssertOpenFails(path, "header length", declared.ToString());
    }

    [Fact]
    public void HeaderLengthAboveTheCapFails()
    {
        string path = _dir.File("capped.safetensors");
        using (var stream = File.Create(path))
        {
            Span<byte> prefix = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, 100_000_001);
            stream.Write(prefix);
            stream.SetLength(8 + 100_000_001); // sparse on Linux: cheap, and never read
        }
        AssertOpenFails(path, "header length 100000001", "limit");
    }

    [Fact]
    public void MissingFileIsAFormatError() =>
        AssertOpenFails(_dir.File("absent.safetensors"), "cannot open");

    [Fact]
    public void HeaderThatIsNotUtf8()
    {
        string path = _dir.File("latin1.safetensors");
        WriteRaw(path, [(byte)'{', (byte)'"', 0xFF, (byte)'"', (byte)':', (byte)'1', (byte)'}'], []);
        AssertOpenFails(path, "UTF-8");
    }

    [Theory]
    [InlineData("", "not valid JSON")]
    [InlineData("[]", "not a JSON object")]
    [InlineData("null", "not a JSON object")]
    [InlineData("{", "not valid JSON")]
    [InlineData("{\"a\": {", "not valid JSON")]
    [InlineData("{} trailing", "not valid JSON")]
    [InlineData("{\"__metadata__\": {},}", "not valid JSON")]
    [InlineData("{/* c */}", "not valid JSON")]
    [InlineData("{\"\\ud800\": {}}", "invalid string")]
    [InlineData("{\"a\": {\"x\": [[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]}}", "not valid JSON")]
    [InlineData("{\"__metadata__\": 5}", "__metadata__ is not a JSON object")]
    [InlineData("{\"__metadata__\": {\"k\": 1}}", "__metadata__ value of 'k' is not a string")]
    [InlineData("{\"__metadata__\": {\"k\": \"1\", \"k\": \"2\"}}", "duplicate key 'k'")]
    [InlineData("{\"__metadata__\": {}, \"__metadata__\": {}}", "duplicate entry '__metadata__'")]
    public void MalformedHeaderJson(string header, string fragment) =>
        AssertHeaderFails(header, fragment);

    [Theory]
    [InlineData("{\"t\": 5}", "entry is not a JSON object")]
    [InlineData("{\"t\": [1, 2]}", "entry is not a JSON object")]
    [InlineData("{\"t\": {\"shape\": [2], \"data_offsets\": [0, 8]}}", "missing 'dtype'")]
    [InlineData("{\"t\": {\"dtype\": \"F32\", \"data_offsets\": [0, 8]}}", "missing 'shape'")]
    [InlineData("{\"t\": {" + F32x2 + "}}", "missing 'data_offsets'")]
    [InlineData("{\"t\": {\"dtype\": 32, \"shape\": [2], \"data_offsets\": [0, 8]}}", "'dtype' is not a string")]
    [InlineData("{\"t\": {\"dtype\": \"F32\", \"shape\": 2, \"data_offsets\": [0, 8]}}", "'shape' is not an array")]
    [InlineData("{\"t\": {\"dtype\": \"F32\", \"shape\": [2.0], \"data_offsets\": [0, 8]}}", "'shape' must contain only int64 integers")]
    [InlineData("{\"t\": {\"dtype\": \"F32\", \"shape\": [\"2\"], \"data_offsets\": [0, 8]}}", "'shape' must contain only int64 integers")]
    [InlineData("{\"t\": {\"dtype\": \"F32\", \"shape\": [99999999999999999999], \"data_offsets\": [0, 8]}}", "'shape' must contain only int64 integers")]
    [InlineData("{\"t\": {" + F32x2 + ", \"data_offsets\": {}}}", "'data_offsets' is not an array")]
    [InlineData("{\"t\": {" + F32x2 + ", \"data_offsets\": [0, 8e0]}}", "'data_offsets' must contain only int64 integers")]
    [InlineData("{\"t\": {" + F32x2 + ", \"data_offsets\": [0, null]}}", "'data_offsets' must contain only int64 integers")]
    [InlineData("{\"t\": {" + F32x2 + ", \"data_offsets\": [8]}}", "[begin, end]")]
    [InlineData("{\"t\": {" + F32x2 + ", \"data_offsets\": [0, 8, 16]}}", "[begin, end]")]
    [InlineData("{\"t\": {" + F32x2 + ", \"shape\": [2], \"data_offsets\": [0, 8]}}", "duplicate field 'shape'")]
    [InlineData("{\"t\": {\"dtype\": \"U16\", \"shape\": [2], \"data_offsets\": [0, 4]}}", "unsupported dtype 'U16'")]
    [InlineData("{\"t\": {\"dtype\": \"I16\", \"shape\": [2], \"data_offsets\": [0, 4]}}", "unsupported dtype 'I16'")]
    [InlineData("{\"t\": {\"dtype\": \"U64\", \"shape\": [2], \"data_offsets\": [0, 16]}}", "unsupported dtype 'U64'")]
    [InlineData("{\"t\": {\"dtype\": \"F8_E4M3\", \"shape\": [2], \"data_offsets\": [0, 2]}}", "unsupported dtype 'F8_E4M3'")]
    [InlineData("{\"t\": {\"dtype\": \"f32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", "unsupported dtype 'f32'")]
    [InlineData("{\"t\": {\"dtype\": \"F32\", \"shape\": [2, -1], \"data_offsets\": [0, 8]}}", "negative dimension -1")]
    [InlineData("{\"t\": {\"dtype\": \"U8\", \"shape\": [4294967296, 4294967296], \"data_offsets\": [0, 8]}}", "too large")]
    [InlineData("{\"t\": {\"dtype\": \"F32\", \"shape\": [2305843009213693952], \"data_offsets\": [0, 8]}}", "too large")]
    [InlineData("{\"t\": {" + F32x2 + ", \"data_offsets\": [-8, 0]}}", "negative data_offsets")]
    [InlineData("{\"t\": {" + F32x2 + ", \"data_offsets\": [16, 8]}}", "begin 16 > end 8")]
    [InlineData("{\"t\": {" + F32x2 + ", \"data_offsets\": [60, 68]}}", "past the end of the data region (64 bytes")]
    [InlineData("{\"t\": {" + F32x2 + ", \"data_offsets\": [0, 9223372036854775807]}}", "past the end")]
    [InlineData("{\"t\": {" + F32x2 + ", \"data_offsets\": [0, 12]}}", "span 12 bytes", "needs 8")]
    [InlineData("{\"t\": {" + F32x2 + ", \"data_offsets\": [0, 8]}, \"t\": {" + F32x2 + ", \"data_offsets\": [8, 16]}}", "duplicate entry 't'")]
    public void MalformedTensorEntryNamesTheTensor(string header, params string[] fragments)
    {
        var error = AssertHeaderFails(header, fragments);
        if (!error.Message.Contains("duplicate entry")) Assert.Contains("tensor 't'", error.Message);
    }

    [Fact]
    public void OverlappingTensorsAreRejected()
    {
        string header = "{\"a\": {" + F32x2 + ", \"data_offsets\": [0, 8]}, \"b\": {" + F32x2 + ", \"data_offsets\": [4, 12]}}";
        AssertHeaderFails(header, "'a' and 'b' overlap");
    }

    [Fact]
    public void EmptyTensorsAndGapsAreNotOverlaps()
    {
        string path = _dir.File("gaps.safetensors");
        WriteRaw(path, "{\"a\": {" + F32x2 + ", \"data_offsets\": [0, 8]}, \"e\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [4, 4]}, " +
                       "\"b\": {" + F32x2 + ", \"data_offsets\": [16, 24]}, \"extra\": {\"dtype\": \"U8\", \"shape\": [], \"data_offsets\": [8, 9], \"note\": [1]}}");
        using var file = SafetensorsFile.Open(path);
        Assert.Equal(["a", "b", "e", "extra"], file.Tensors.Select(t => t.Name));
        Assert.Equal([0L], file.ReadInt64("extra"));
    }

    [Fact]
    public void HostileTensorNameStaysOnOneLine()
    {
        var error = AssertHeaderFails("{\"evil\\nname\": {\"dtype\": \"U16\", \"shape\": [], \"data_offsets\": [0, 2]}}", "evil\\u000aname");
        Assert.Contains("U16", error.Message);
    }

    [Fact]
    public void HeaderLengthThatCutsTheJson()
    {
        string path = _dir.File("cut.safetensors");
        WriteRaw(path, "{\"t\": {" + F32x2 + ", \"data_offsets\": [0, 8]}}", declaredHeaderLength: 10);
        AssertOpenFails(path, "not valid JSON");
    }

    [Fact]
    public void EveryTruncationIsAFormatErrorOrTheWholeFile()
    {
        string source = _dir.File("source.safetensors");
        WriteSmallValidFile(source);
        byte[] whole = File.ReadAllBytes(source);
        string path = _dir.File("truncated.safetensors");
        for (int length = 0; length <= whole.Length; length++)
        {
            File.WriteAllBytes(path, whole[..length]);
            var error = Record.Exception(() => OpenAndReadAll(path));
            if (length == whole.Length) Assert.Null(error);
            else AssertOneLineNaming(Assert.IsType<ModelFormatException>(error), "truncated.safetensors");
        }
    }

    [Fact]
    public void RandomBitFlipsInTheHeaderNeverLeakOtherExceptions()
    {
        string source = _dir.File("source.safetensors");
        WriteSmallValidFile(source);
        byte[] whole = File.ReadAllBytes(source);
        int headerEnd = 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(whole);
        string path = _dir.File("flipped.safetensors");
        var random = new Random(20240611);
        for (int trial = 0; trial < 400; trial++)
        {
            byte[] bytes = (byte[])whole.Clone();
            int flips = 1 + random.Next(3);
            for (int i = 0; i < flips; i++)
            {
                int at = random.Next(headerEnd);
                bytes[at] ^= (byte)(1 << random.Next(8));
            }
            File.WriteAllBytes(path, bytes);
            var error = Record.Exception(() => OpenAndReadAll(path));
            if (error is not null) AssertOneLineNaming(Assert.IsType<ModelFormatException>(error), "flipped.safetensors");
        }
    }

    private ModelFormatException AssertHeaderFails(string header, params string[] fragments)
    {
        string path = _dir.File("hostile.safetensors");
        WriteRaw(path, header);
        return AssertOpenFails(path, fragments);
    }
}
