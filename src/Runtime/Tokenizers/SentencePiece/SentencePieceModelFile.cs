using System.Text;

namespace ModelCompiler.Runtime.Tokenizers.SentencePiece;

/// <summary>A SentencePiece piece type (ModelProto.SentencePiece.Type).</summary>
public enum PieceType { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 }

public sealed record SentencePieceEntry(string Piece, float Score, PieceType Type);

/// <summary>
/// The fields of a SentencePiece <c>.model</c> file (a serialized <c>ModelProto</c>) that encoding and
/// decoding need, read with a hand-written protobuf reader: the pieces, the trainer spec's model type,
/// byte fallback and special ids, and the normalizer spec.
/// </summary>
public sealed class SentencePieceModelFile
{
    public List<SentencePieceEntry> Pieces { get; } = [];
    /// <summary>1 UNIGRAM, 2 BPE, 3 WORD, 4 CHAR.</summary>
    public int ModelType { get; private set; } = 1;
    public bool ByteFallback { get; private set; }
    public bool SplitDigits { get; private set; }
    public bool TreatWhitespaceAsSuffix { get; private set; }
    public int UnkId { get; private set; } = 0;
    public int BosId { get; private set; } = 1;
    public int EosId { get; private set; } = 2;
    public int PadId { get; private set; } = -1;
    public string UnkSurface { get; private set; } = " \u2047 ";
    public string NormalizerName { get; private set; } = "";
    public byte[] PrecompiledCharsMap { get; private set; } = [];
    public bool AddDummyPrefix { get; private set; } = true;
    public bool RemoveExtraWhitespaces { get; private set; } = true;
    public bool EscapeWhitespaces { get; private set; } = true;

    /// <summary>
    /// A BPE model from its pieces alone (a GGUF file's llama vocabulary): byte fallback when it has byte pieces,
    /// whitespace escaped and a dummy prefix added, no other normalization, as llama.cpp's SPM tokenizer does.
    /// </summary>
    public static SentencePieceModelFile Bpe(IEnumerable<SentencePieceEntry> pieces, int unk, int bos, int eos, int pad, bool addDummyPrefix)
    {
        var m = new SentencePieceModelFile
        {
            ModelType = 2, UnkId = unk, BosId = bos, EosId = eos, PadId = pad, AddDummyPrefix = addDummyPrefix,
            RemoveExtraWhitespaces = false, NormalizerName = "identity",
        };
        m.Pieces.AddRange(pieces);
        m.ByteFallback = m.Pieces.Any(p => p.Type == PieceType.Byte);
        return m;
    }

    public static SentencePieceModelFile Load(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new McException($"{path}: cannot read: {e.Message}"); }
        return Parse(bytes, path);
    }

    public static SentencePieceModelFile Parse(ReadOnlySpan<byte> data, string file)
    {
        var m = new SentencePieceModelFile();
        var r = new ProtoReader(data, file);
        while (r.Next(out int field, out int wire))
        {
            switch (field)
            {
                case 1: r.Expect(2, wire, "pieces"); m.Pieces.Add(ParsePiece(r.Bytes(), file, m.Pieces.Count)); break;
                case 2: r.Expect(2, wire, "trainer_spec"); m.ParseTrainerSpec(r.Bytes(), $"{file}: trainer_spec"); break;
                case 3: r.Expect(2, wire, "normalizer_spec"); m.ParseNormalizerSpec(r.Bytes(), $"{file}: normalizer_spec"); break;
                default: r.Skip(wire); break;
            }
        }
        if (m.Pieces.Count == 0) throw new ModelFormatException($"{file}: not a SentencePiece model (no pieces)");
        return m;
    }

    private static SentencePieceEntry ParsePiece(ReadOnlySpan<byte> data, string file, int index)
    {
        var where = $"{file}: pieces[{index}]";
        var r = new ProtoReader(data, where);
        string? piece = null;
        float score = 0;
        int type = 1;
        while (r.Next(out int field, out int wire))
        {
            switch (field)
            {
                case 1: r.Expect(2, wire, "piece"); piece = Utf8(r.Bytes(), where); break;
                case 2: r.Expect(5, wire, "score"); score = r.Float(); break;
                case 3: r.Expect(0, wire, "type"); type = (int)r.Varint(); break;
                default: r.Skip(wire); break;
            }
        }
        if (string.IsNullOrEmpty(piece)) throw new ModelFormatException($"{where}: empty piece");
        if (type is < 1 or > 6) throw new ModelFormatException($"{where}: unknown piece type {type}");
        if (float.IsNaN(score)) throw new ModelFormatException($"{where}: score is NaN");
        return new SentencePieceEntry(piece, score, (PieceType)type);
    }

    private void ParseTrainerSpec(ReadOnlySpan<byte> data, string where)
    {
        var r = new ProtoReader(data, where);
        while (r.Next(out int field, out int wire))
        {
            switch (field)
            {
                case 3: r.Expect(0, wire, "model_type"); ModelType = (int)r.Varint(); break;
                case 24: r.Expect(0, wire, "treat_whitespace_as_suffix"); TreatWhitespaceAsSuffix = r.Varint() != 0; break;
                case 25: r.Expect(0, wire, "split_digits"); SplitDigits = r.Varint() != 0; break;
                case 35: r.Expect(0, wire, "byte_fallback"); ByteFallback = r.Varint() != 0; break;
                case 40: r.Expect(0, wire, "unk_id"); UnkId = (int)(long)r.Varint(); break;
                case 41: r.Expect(0, wire, "bos_id"); BosId = (int)(long)r.Varint(); break;
                case 42: r.Expect(0, wire, "eos_id"); EosId = (int)(long)r.Varint(); break;
                case 43: r.Expect(0, wire, "pad_id"); PadId = (int)(long)r.Varint(); break;
                case 44: r.Expect(2, wire, "unk_surface"); UnkSurface = Utf8(r.Bytes(), where); break;
                default: r.Skip(wire); break;
            }
        }
    }

    private void ParseNormalizerSpec(ReadOnlySpan<byte> data, string where)
    {
        var r = new ProtoReader(data, where);
        while (r.Next(out int field, out int wire))
        {
            switch (field)
            {
                case 1: r.Expect(2, wire, "name"); NormalizerName = Utf8(r.Bytes(), where); break;
                case 2: r.Expect(2, wire, "precompiled_charsmap"); PrecompiledCharsMap = r.Bytes().ToArray(); break;
                case 3: r.Expect(0, wire, "add_dummy_prefix"); AddDummyPrefix = r.Varint() != 0; break;
                case 4: r.Expect(0, wire, "remove_extra_whitespaces"); RemoveExtraWhitespaces = r.Varint() != 0; break;
                case 5: r.Expect(0, wire, "escape_whitespaces"); EscapeWhitespaces = r.Varint() != 0; break;
                default: r.Skip(wire); break;
            }
        }
    }

    private static string Utf8(ReadOnlySpan<byte> bytes, string where)
    {
        try { return new UTF8Encoding(false, true).GetString(bytes); }
        catch (DecoderFallbackException) { throw new ModelFormatException($"{where}: a string is not valid UTF-8"); }
    }
}
