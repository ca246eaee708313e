using System.Buffers.Binary;
using System.Text;

namespace ModelCompiler.Runtime.Gguf;

/// <summary>The ggml tensor types this reader takes (ids as in ggml.h); others are rejected naming the tensor.</summary>
public enum GgmlType : uint
{
    F32 = 0,
    F16 = 1,
    /// <summary>Blocks of 32 weights: fp16 scale d, 16 bytes of 4-bit codes (low nibbles 0..15, high 16..31); w = d·(q − 8).</summary>
    Q4_0 = 2,
    /// <summary>Blocks of 32 weights: fp16 scale d, 32 int8 codes; w = d·q.</summary>
    Q8_0 = 8,
    BF16 = 30,
}

/// <summary>
/// One tensor of a GGUF file. <see cref="Dims"/> are ggml's ne[], innermost (the row length) first, so a Hugging Face
/// weight [N, K] is stored with Dims [K, N]. <see cref="Offset"/> is absolute in the file.
/// </summary>
public sealed record GgufTensor(string Name, GgmlType Type, long[] Dims, long Offset, long ByteLength)
{
    public long ElementCount => Dims.Aggregate(1L, (a, d) => a * d);

    /// <summary>The shape in row-major (PyTorch) order: Dims reversed.</summary>
    public long[] Shape => Dims.Reverse().ToArray();

    public long RowLength => Dims[0];

    public long Rows => ElementCount / Math.Max(1, Dims[0]);
}

/// <summary>A metadata array: its element type and values (long, ulong, double, bool or string elements).</summary>
public sealed record GgufArray(GgufFile.ValueType ElementType, Array Values);

/// <summary>
/// A memory-mapped, validated GGUF file (llama.cpp's format, versions 2 and 3: magic, version, tensor and metadata
/// counts, key/value metadata, tensor infos, aligned tensor data). Every count, length, dimension and offset is
/// checked against the file's size and against overflow before anything is allocated; every problem is a one-line
/// <see cref="ModelFormatException"/> naming the file and the key or tensor at fault.
/// </summary>
public sealed class GgufFile : IDisposable
{
    /// <summary>Metadata value types (gguf_type).</summary>
    public enum ValueType : uint { U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7, String = 8, Array = 9, U64 = 10, I64 = 11, F64 = 12 }

    public const int BlockSize = 32;
    private const uint Magic = 0x46554747;   // "GGUF" little-endian
    private const uint DefaultAlignment = 32;
    private const int MaxDims = 4;           // GGML_MAX_DIMS

    private readonly MappedFile _map;
    private long _at;
    private string _where = "header";

    public string Path { get; }
    public uint Version { get; private set; }
    public long Alignment { get; private set; } = DefaultAlignment;

    /// <summary>Metadata in file order: integers as long (ulong above long.MaxValue), floats as double, bool, string, <see cref="GgufArray"/>.</summary>
    public IReadOnlyDictionary<string, object> Metadata => _metadata;
    private readonly Dictionary<string, object> _metadata = new(StringComparer.Ordinal);

    public IReadOnlyList<GgufTensor> Tensors => _tensors;
    private readonly List<GgufTensor> _tensors = [];
    private readonly Dictionary<string, GgufTensor> _byName = new(StringComparer.Ordinal);

    private GgufFile(string path, MappedFile map)
    {
        Path = path;
        _map = map;
    }

    public static bool LooksLikeGguf(string path) =>
        File.Exists(path) && path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase);

    public static GgufFile Open(string path)
    {
        var map = MappedFile.Open(path, 24, "GGUF");
        try
        {
            var file = new GgufFile(path, map);
            file.ReadHeader();
            return file;
        }
        catch
        {
            map.Dispose();
            throw;
        }
    }

    public bool Contains(string name) => _byName.ContainsKey(name);

    public GgufTensor Get(string name) =>
        _byName.TryGetValue(name, out var t) ? t : throw Error(Path, $"no tensor {UserText.Quote(name)}");

    /// <summary>The tensor's bytes straight from the mapping (no copy); valid until Dispose.</summary>
    public ReadOnlySpan<byte> Bytes(GgufTensor tensor)
    {
        if (tensor.ByteLength > int.MaxValue)
            throw Error(Path, $"tensor {UserText.Quote(tensor.Name)} is {tensor.ByteLength} bytes, too large for one read");
        return _map.Span(tensor.Offset, (int)tensor.ByteLength);
    }

    // ---- metadata accessors: a value of the wrong type is an error naming the key ----

    public bool Has(string key) => _metadata.ContainsKey(key);

    public string? String(string key) => _metadata.TryGetValue(key, out var v)
        ? v as string ?? throw WrongType(key, "a string") : null;

    public long? Integer(string key)
    {
        if (!_metadata.TryGetValue(key, out var v)) return null;
        return v switch
        {
            long l => l,
            _ => throw WrongType(key, "an integer below 2^63"),
        };
    }

    public double? Float(string key)
    {
        if (!_metadata.TryGetValue(key, out var v)) return null;
        return v switch
        {
            double d => d,
            long l => l,
            _ => throw WrongType(key, "a number"),
        };
    }

    public T[]? Array<T>(string key, string what)
    {
        if (!_metadata.TryGetValue(key, out var v)) return null;
        return v is GgufArray { Values: T[] values } ? values : throw WrongType(key, what);
    }

    private ModelFormatException WrongType(string key, string what) => Error(Path, $"metadata {UserText.Quote(key)} is not {what}");

    public static ModelFormatException Error(string path, string detail) =>
        new($"{path}: {detail}".Replace('\n', ' ').Replace('\r', ' '));

    // ---- parsing ----

    private void ReadHeader()
    {
        if (U32() != Magic) throw Bad("not a GGUF file (the first four bytes are not \"GGUF\")");
        Version = U32();
        if (Version is not (2 or 3)) throw Bad($"GGUF version {Version} is not supported (2 or 3)");
        ulong tensorCount = U64(), kvCount = U64();
        // Each metadata entry takes at least 12 bytes (key length, type), each tensor info at least 24.
        if (kvCount > (ulong)Remaining / 12) throw Bad($"metadata count {kvCount} cannot fit in the rest of the file ({Remaining} bytes)");
        if (tensorCount > (ulong)Remaining / 24) throw Bad($"tensor count {tensorCount} cannot fit in the rest of the file ({Remaining} bytes)");

        for (ulong i = 0; i < kvCount; i++)
        {
            _where = $"metadata entry {i}";
            var key = Str();
            _where = $"metadata {UserText.Quote(key)}";
            var type = (ValueType)U32();
            var value = Value(type, allowArray: true);
            if (!_metadata.TryAdd(key, value)) throw Bad("the key appears twice");
        }
        _where = "header";
        if (_metadata.TryGetValue("general.alignment", out var alignment))
        {
            if (alignment is not long a || a <= 0 || a > 1 << 20 || (a & (a - 1)) != 0)
                throw Bad($"metadata 'general.alignment' must be a power of two up to 2^20, got {alignment}");
            Alignment = a;
        }

        var raw = new List<(string Name, GgmlType Type, long[] Dims, ulong Offset, long Bytes)>();
        for (ulong i = 0; i < tensorCount; i++)
        {
            _where = $"tensor info {i}";
            var name = Str();
            _where = $"tensor {UserText.Quote(name)}";
            uint nDims = U32();
            if (nDims is 0 or > MaxDims) throw Bad($"has {nDims} dimensions (1 to {MaxDims})");
            var dims = new long[nDims];
            long elements = 1;
            for (int d = 0; d < nDims; d++)
            {
                ulong dim = U64();
                if (dim > long.MaxValue) throw Bad($"dimension {d} is {dim}");
                dims[d] = (long)dim;
                try { elements = checked(elements * dims[d]); }
                catch (OverflowException) { throw Bad($"dimensions [{string.Join(", ", dims.Take(d + 1))}] overflow a 64-bit element count"); }
            }
            uint typeId = U32();
            if (!Enum.IsDefined(typeof(GgmlType), typeId))
                throw Bad($"has ggml type {typeId}{KnownTypeName(typeId)}, which this reader does not take (F32, F16, BF16, Q8_0, Q4_0)");
            var type = (GgmlType)typeId;
            long bytes;
            if (type is GgmlType.Q8_0 or GgmlType.Q4_0)
            {
                if (dims[0] % BlockSize != 0) throw Bad($"is {type} but its row length {dims[0]} is not a multiple of {BlockSize}");
                bytes = elements / BlockSize * (type == GgmlType.Q8_0 ? 34 : 18);   // at most elements·34/32: no overflow past the checked count
                if (bytes < 0 || elements > long.MaxValue / 2) throw Bad("is too large");
            }
            else
            {
                int size = type == GgmlType.F32 ? 4 : 2;
                if (elements > long.MaxValue / size) throw Bad("is too large");
                bytes = elements * size;
            }
            ulong offset = U64();
            if (!_byName.TryAdd(name, null!)) throw Bad("appears twice");   // a placeholder; the real entries come after the offsets are checked
            raw.Add((name, type, dims, offset, bytes));
        }
        _where = "header";
        _byName.Clear();

        long dataStart = (_at + Alignment - 1) / Alignment * Alignment;
        long dataLength = _map.Length - dataStart;
        foreach (var (name, type, dims, offset, bytes) in raw)
        {
            _where = $"tensor {UserText.Quote(name)}";
            if (offset % (ulong)Alignment != 0) throw Bad($"data offset {offset} is not a multiple of the alignment {Alignment}");
            if (dataLength < 0 || offset > (ulong)dataLength || (ulong)bytes > (ulong)dataLength - offset)
                throw Bad($"data [{offset}, +{bytes}) lies outside the file's data region ({Math.Max(0, dataLength)} bytes after offset {dataStart})");
            var tensor = new GgufTensor(name, type, dims, dataStart + (long)offset, bytes);
            _tensors.Add(tensor);
            _byName[name] = tensor;
        }
        _where = "header";
    }

    private static string KnownTypeName(uint id) => id switch
    {
        3 => " (Q4_1)", 6 => " (Q5_0)", 7 => " (Q5_1)", 9 => " (Q8_1)", 10 => " (Q2_K)", 11 => " (Q3_K)", 12 => " (Q4_K)",
        13 => " (Q5_K)", 14 => " (Q6_K)", 15 => " (Q8_K)", 24 => " (I8)", 25 => " (I16)", 26 => " (I32)", 27 => " (I64)", 28 => " (F64)",
        _ => "",
    };

    private object Value(ValueType type, bool allowArray)
    {
        switch (type)
        {
            case ValueType.U8: return (long)Take(1)[0];
            case ValueType.I8: return (long)(sbyte)Take(1)[0];
            case ValueType.U16: return (long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2));
            case ValueType.I16: return (long)BinaryPrimitives.ReadInt16LittleEndian(Take(2));
            case ValueType.U32: return (long)U32();
            case ValueType.I32: return (long)BinaryPrimitives.ReadInt32LittleEndian(Take(4));
            case ValueType.F32: return (double)BinaryPrimitives.ReadSingleLittleEndian(Take(4));
            case ValueType.Bool:
                byte b = Take(1)[0];
                if (b > 1) throw Bad($"a bool is {b}");
                return b == 1;
            case ValueType.String: return Str();
            case ValueType.U64: { ulong u = U64(); return u <= long.MaxValue ? (long)u : u; }
            case ValueType.I64: return BinaryPrimitives.ReadInt64LittleEndian(Take(8));
            case ValueType.F64: return BinaryPrimitives.ReadDoubleLittleEndian(Take(8));
            case ValueType.Array when allowArray:
                var element = (ValueType)U32();
                ulong count = U64();
                int size = ElementSize(element);
                if (count > (ulong)Remaining / (ulong)size)
                    throw Bad($"array of {count} {element} elements cannot fit in the rest of the file ({Remaining} bytes)");
                return new GgufArray(element, ReadArray(element, (int)count));
            case ValueType.Array: throw Bad("arrays of arrays are not supported");
            default: throw Bad($"unknown value type {(uint)type}");
        }
    }

    /// <summary>Bytes an element takes at least (a string: its 8-byte length).</summary>
    private int ElementSize(ValueType t) => t switch
    {
        ValueType.U8 or ValueType.I8 or ValueType.Bool => 1,
        ValueType.U16 or ValueType.I16 => 2,
        ValueType.U32 or ValueType.I32 or ValueType.F32 => 4,
        ValueType.U64 or ValueType.I64 or ValueType.F64 or ValueType.String => 8,
        ValueType.Array => throw Bad("arrays of arrays are not supported"),
        _ => throw Bad($"unknown array element type {(uint)t}"),
    };

    private Array ReadArray(ValueType element, int count)
    {
        switch (element)
        {
            case ValueType.String:
                var strings = new string[count];
                for (int i = 0; i < count; i++) strings[i] = Str();
                return strings;
            case ValueType.F32 or ValueType.F64:
                var doubles = new double[count];
                for (int i = 0; i < count; i++) doubles[i] = (double)Value(element, false);
                return doubles;
            case ValueType.Bool:
                var bools = new bool[count];
                for (int i = 0; i < count; i++) bools[i] = (bool)Value(element, false);
                return bools;
            default:
                var longs = new long[count];
                for (int i = 0; i < count; i++)
                {
                    var v = Value(element, false);
                    longs[i] = v is long l ? l : throw Bad($"array element {i} is {v}, above 2^63");
                }
                return longs;
        }
    }

    private long Remaining => _map.Length - _at;

    private ReadOnlySpan<byte> Take(long n)
    {
        if (n < 0 || n > Remaining) throw Bad($"truncated: needs {n} more bytes at offset {_at}, the file has {Remaining}");
        var span = _map.Span(_at, (int)n);
        _at += n;
        return span;
    }

    private uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));

    private ulong U64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));

    private string Str()
    {
        ulong n = U64();
        if (n > (ulong)Remaining) throw Bad($"a string of {n} bytes runs past the end of the file ({Remaining} bytes left)");
        if (n > int.MaxValue) throw Bad($"a string of {n} bytes is too long");
        return Encoding.UTF8.GetString(Take((long)n));   // invalid sequences become U+FFFD, as a tokenizer would show them
    }

    private ModelFormatException Bad(string detail) => Error(Path, $"{_where}: {detail}");

    public void Dispose() => _map.Dispose();

    public override string ToString() => $"{Path} (GGUF v{Version}, {_tensors.Count} tensors, {_metadata.Count} metadata keys)";
}
