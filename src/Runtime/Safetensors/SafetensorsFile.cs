using System.Buffers.Binary;
using System.Runtime.InteropServices;
using static ModelCompiler.Runtime.SafetensorsErrors;

namespace ModelCompiler.Runtime;

/// <summary>
/// A memory-mapped, validated, read-only safetensors file
/// (https://github.com/huggingface/safetensors: u64 LE header length, JSON header, data region).
/// Every problem with the file is a one-line <see cref="ModelFormatException"/> naming it.
/// </summary>
public sealed class SafetensorsFile : ITensorSource
{
    private const int LengthPrefixSize = 8;

    // Tensors are converted in chunks so that one over 2 GiB (too big for a span) can still be read.
    private const int MaxChunkBytes = 1 << 30;

    private readonly MappedFile _map;
    private IReadOnlyList<TensorInfo> _tensors = [];
    private Dictionary<string, TensorInfo> _byName = new(StringComparer.Ordinal);

    public string Path { get; }

    /// <summary>All tensors, ordered by name (ordinal).</summary>
    public IReadOnlyList<TensorInfo> Tensors => _tensors;

    /// <summary>The header's "__metadata__" entries; empty if it has none.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; private set; } = new Dictionary<string, string>();

    private SafetensorsFile(string path, MappedFile map)
    {
        Path = path;
        _map = map;
    }

    public static SafetensorsFile Open(string path)
    {
        var map = MappedFile.Open(path, LengthPrefixSize, "safetensors");
        try
        {
            var file = new SafetensorsFile(path, map);
            file.ReadHeader();
            return file;
        }
        catch
        {
            map.Dispose();
            throw;
        }
    }

    private void ReadHeader()
    {
        // Unsigned, so a hostile 2^63 is not read as negative; every check comes before any allocation.
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(Span(0, LengthPrefixSize));
        ulong available = (ulong)(_map.Length - LengthPrefixSize);
        if (headerLength > available)
            throw Format(Path, $"header length {headerLength} is larger than the rest of the file ({available} bytes)");
        if (headerLength > SafetensorsHeader.MaxHeaderLength)
            throw Format(Path, $"header length {headerLength} exceeds the {SafetensorsHeader.MaxHeaderLength}-byte limit");

        long dataStart = LengthPrefixSize + (long)headerLength;
        var parsed = SafetensorsHeader.Parse(Path, Span(LengthPrefixSize, (int)headerLength), dataStart, _map.Length - dataStart);
        _tensors = parsed.Tensors;
        _byName = parsed.Tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        Metadata = parsed.Metadata;
    }

    public bool Contains(string name) => _byName.ContainsKey(name);

    public TensorInfo Get(string name) =>
        _byName.TryGetValue(name, out var info) ? info : throw Format(Path, $"no tensor {Quote(name)}");

    /// <summary>
    /// The tensor's raw little-endian bytes, straight from the mapping (no copy); valid until Dispose.
    /// </summary>
    public ReadOnlySpan<byte> GetBytes(string name)
    {
        var info = Get(name);
        if (info.ByteLength > int.MaxValue)
            throw Format(Path, $"tensor {Quote(name)} is {info.ByteLength} bytes, too large for a single span");
        return Span(info.DataOffset, (int)info.ByteLength);
    }

    /// <summary>Reads a float tensor (F32, F16, BF16, F64), or int8/uint8 codes, as float32.</summary>
    public float[] ReadFloat32(string name)
    {
        var info = Get(name);
        return info.DType switch
        {
            DType.F32 => Read<float>(info, CopyLittleEndian),
            DType.F16 => Read<float>(info, static (src, dst) =>
            {
                for (int i = 0; i < dst.Length; i++) dst[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(src[(2 * i)..]);
            }),
            DType.BF16 => Read<float>(info, static (src, dst) =>
            {
                for (int i = 0; i < dst.Length; i++) dst[i] = BFloat16ToSingle(BinaryPrimitives.ReadUInt16LittleEndian(src[(2 * i)..]));
            }),
            DType.F64 => Read<float>(info, static (src, dst) =>
            {
                for (int i = 0; i < dst.Length; i++) dst[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(src[(8 * i)..]);
            }),
            // Quantized codes (small integers, exact in float32) for compiled models, whose loader reads floats.
            DType.I8 => Read<float>(info, static (src, dst) =>
            {
                for (int i = 0; i < dst.Length; i++) dst[i] = (sbyte)src[i];
            }),
            DType.U8 => Read<float>(info, static (src, dst) =>
            {
                for (int i = 0; i < dst.Length; i++) dst[i] = src[i];
            }),
            _ => throw CannotRead(info, "float32"),
        };
    }

    /// <summary>Reads a float tensor (F64, F32, F16, BF16) widened to float64.</summary>
    public double[] ReadFloat64(string name)
    {
        var info = Get(name);
        return info.DType switch
        {
            DType.F64 => Read<double>(info, CopyLittleEndian),
            DType.F32 => Read<double>(info, static (src, dst) =>
            {
                for (int i = 0; i < dst.Length; i++) dst[i] = BinaryPrimitives.ReadSingleLittleEndian(src[(4 * i)..]);
            }),
            DType.F16 => Read<double>(info, static (src, dst) =>
            {
                for (int i = 0; i < dst.Length; i++) dst[i] = (double)BinaryPrimitives.ReadHalfLittleEndian(src[(2 * i)..]);
            }),
            DType.BF16 => Read<double>(info, static (src, dst) =>
            {
                for (int i = 0; i < dst.Length; i++) dst[i] = BFloat16ToSingle(BinaryPrimitives.ReadUInt16LittleEndian(src[(2 * i)..]));
            }),
            _ => throw CannotRead(info, "float64"),
        };
    }

    /// <summary>Reads an integer or bool tensor (I64, I32, I8, U8, BOOL as 0/1) as int64.</summary>
    public long[] ReadInt64(string name)
    {
        var info = Get(name);
        return info.DType switch
        {
            DType.I64 => Read<long>(info, CopyLittleEndian),
            DType.I32 => Read<long>(info, static (src, dst) =>
            {
                for (int i = 0; i < dst.Length; i++) dst[i] = BinaryPrimitives.ReadInt32LittleEndian(src[(4 * i)..]);
            }),
            DType.I8 => Read<long>(info, static (src, dst) =>
            {
                for (int i = 0; i < dst.Length; i++) dst[i] = (sbyte)src[i];
            }),
            DType.U8 => Read<long>(info, static (src, dst) =>
            {
                for (int i = 0; i < dst.Length; i++) dst[i] = src[i];
            }),
            DType.Bool => Read<long>(info, static (src, dst) =>
            {
                for (int i = 0; i < dst.Length; i++) dst[i] = src[i] != 0 ? 1 : 0;
            }),
            _ => throw CannotRead(info, "int64"),
        };
    }

    /// <summary>bfloat16 is the top half of a float32.</summary>
    internal static float BFloat16ToSingle(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    private delegate void ChunkConverter<T>(ReadOnlySpan<byte> source, Span<T> destination);

    private T[] Read<T>(TensorInfo info, ChunkConverter<T> convert)
    {
        long count = info.ElementCount;
        if (count > Array.MaxLength)
            throw Format(Path, $"tensor {Quote(info.Name)} has {count} elements, too many for one array");
        var result = new T[count];
        int elementSize = info.DType.SizeInBytes();
        int chunkElements = MaxChunkBytes / elementSize;
        for (long done = 0; done < count;)
        {
            int n = (int)Math.Min(chunkElements, count - done);
            convert(Span(info.DataOffset + done * elementSize, n * elementSize), result.AsSpan((int)done, n));
            done += n;
        }
        return result;
    }

    private static void CopyLittleEndian<T>(ReadOnlySpan<byte> source, Span<T> destination) where T : unmanaged
    {
        // The file is little-endian, as is every platform .NET runs this on; a plain copy is the fast path.
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("big-endian hosts are not supported");
        source.CopyTo(MemoryMarshal.AsBytes(destination));
    }

    private ModelFormatException CannotRead(TensorInfo info, string target) =>
        Format(Path, $"tensor {Quote(info.Name)} has dtype {SafetensorsDTypes.Name(info.DType)}, which cannot be read as {target}");

    private ReadOnlySpan<byte> Span(long offset, int length) => _map.Span(offset, length);

    public void Dispose() => _map.Dispose();

    public override string ToString() => $"{Path} ({_tensors.Count} tensors)";
}
