namespace ModelCompiler.Runtime.Tokenizers.SentencePiece;

/// <summary>A minimal protobuf wire-format reader: varints, fixed32/64 and length-delimited fields, every
/// read bounds-checked (a hostile length is an error naming the file, not an allocation).</summary>
internal ref struct ProtoReader
{
    private readonly ReadOnlySpan<byte> _data;
    private readonly string _where;
    private int _pos;

    public ProtoReader(ReadOnlySpan<byte> data, string where) { _data = data; _where = where; _pos = 0; }

    public bool End => _pos >= _data.Length;
    public int Position => _pos;

    private ModelFormatException Error(string message) => new($"{_where}: {message} at byte {_pos}");

    public ulong Varint()
    {
        ulong result = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (_pos >= _data.Length) throw Error("truncated varint");
            byte b = _data[_pos++];
            result |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return result;
        }
        throw Error("varint longer than 10 bytes");
    }

    /// <summary>The next field's number and wire type; false at the end.</summary>
    public bool Next(out int field, out int wireType)
    {
        field = 0; wireType = 0;
        if (End) return false;
        ulong key = Varint();
        field = (int)Math.Min(key >> 3, int.MaxValue);
        wireType = (int)(key & 7);
        if (field == 0) throw Error("field number 0");
        return true;
    }

    public ReadOnlySpan<byte> Bytes()
    {
        ulong len = Varint();
        if (len > (ulong)(_data.Length - _pos)) throw Error($"a field of {len} bytes, but only {_data.Length - _pos} bytes are left");
        var span = _data.Slice(_pos, (int)len);
        _pos += (int)len;
        return span;
    }

    public uint Fixed32()
    {
        if (_data.Length - _pos < 4) throw Error("truncated fixed32");
        uint v = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(_data[_pos..]);
        _pos += 4;
        return v;
    }

    public float Float() => BitConverter.Int32BitsToSingle((int)Fixed32());

    public void Skip(int wireType)
    {
        switch (wireType)
        {
            case 0: Varint(); break;
            case 1: if (_data.Length - _pos < 8) throw Error("truncated fixed64"); _pos += 8; break;
            case 2: Bytes(); break;
            case 5: Fixed32(); break;
            default: throw Error($"unsupported wire type {wireType}");
        }
    }

    public void Expect(int wireType, int actual, string field)
    {
        if (wireType != actual) throw Error($"field {field} has wire type {actual}, expected {wireType}");
    }
}
