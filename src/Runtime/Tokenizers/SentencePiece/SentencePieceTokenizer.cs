using System.Text;
using ModelCompiler.Runtime.Tokenizers.Unicode;

namespace ModelCompiler.Runtime.Tokenizers.SentencePiece;

/// <summary>
/// A SentencePiece <c>.model</c> tokenizer, following the C++ library: the normalizer (precompiled charsmap
/// with longest-prefix rules, dummy prefix, extra-whitespace removal, spaces as "▁"), then the BPE model
/// (merges by piece score) or the unigram model (Viterbi), byte fallback for unknown characters, and its
/// decoder. Like <c>sp.encode</c>, encoding adds no BOS/EOS (prepend <see cref="SpecialIds"/>.Bos yourself).
/// </summary>
public sealed class SentencePieceTokenizer : ITokenizer
{
    private readonly SentencePieceModelFile _m;
    private readonly PrecompiledCharsMap _charsMap;
    private readonly Dictionary<string, int> _pieces = new(StringComparer.Ordinal);   // normal, user-defined, unused
    private readonly Dictionary<string, int> _all = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _special = new(StringComparer.Ordinal);
    private readonly UnigramModel? _unigram;
    private readonly List<string> _userDefined = [];
    private readonly byte[][] _userDefinedUtf8;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _pieceLookup;
    private readonly int?[] _byteIds = new int?[256];
    private const string Space = "\u2581";

    public string Source { get; }
    public SentencePieceModelFile ModelFile => _m;
    public SpecialTokenIds SpecialIds { get; }

    public SentencePieceTokenizer(SentencePieceModelFile model, string source)
    {
        _m = model;
        Source = source;
        if (model.ModelType is not (1 or 2))
            throw new ModelFormatException($"{source}: trainer_spec.model_type {model.ModelType} ({(model.ModelType == 3 ? "WORD" : model.ModelType == 4 ? "CHAR" : "unknown")}) is not supported (UNIGRAM or BPE)");
        int n = model.Pieces.Count;
        for (int i = 0; i < n; i++)
        {
            var p = model.Pieces[i];
            _all.TryAdd(p.Piece, i);
            if (p.Type is PieceType.Normal or PieceType.UserDefined or PieceType.Unused) _pieces.TryAdd(p.Piece, i);
            if (p.Type is PieceType.Control or PieceType.Unknown) _special.TryAdd(p.Piece, i);
            if (p.Type == PieceType.UserDefined) _userDefined.Add(p.Piece);
            if (p.Type == PieceType.Byte)
            {
                if (!ByteFallbackDecoder.TryByte(p.Piece, out byte b)) throw new ModelFormatException($"{source}: pieces[{i}]: byte piece {UserText.Quote(p.Piece)} is not of the form <0xXX>");
                _byteIds[b] ??= i;
            }
        }
        _userDefined.Sort((a, b) => b.Length.CompareTo(a.Length));
        _userDefinedUtf8 = _userDefined.Select(u => Encoding.UTF8.GetBytes(u)).OrderByDescending(b => b.Length).ToArray();
        _pieceLookup = _pieces.GetAlternateLookup<ReadOnlySpan<char>>();
        if (model.UnkId < 0 || model.UnkId >= n || model.Pieces[model.UnkId].Type != PieceType.Unknown)
            throw new ModelFormatException($"{source}: trainer_spec.unk_id {model.UnkId} is not an unknown piece");
        if (model.ByteFallback && _byteIds.Any(b => b is null))
            throw new ModelFormatException($"{source}: trainer_spec.byte_fallback is set but not all 256 <0xXX> pieces exist");
        int? Id(int id) => id >= 0 && id < n ? id : null;
        SpecialIds = new SpecialTokenIds(Id(model.BosId), Id(model.EosId), model.UnkId, Id(model.PadId));
        _charsMap = PrecompiledCharsMap.Parse(model.PrecompiledCharsMap, $"{source}: normalizer_spec.precompiled_charsmap");
        if (model.ModelType == 1)
        {
            var pieces = model.Pieces.Select(p => p.Piece).ToArray();
            var scores = model.Pieces.Select(p => (double)p.Score).ToArray();
            _unigram = new UnigramModel(pieces, scores, model.UnkId, model.ByteFallback, sentencePieceMode: true,
                matchable: model.Pieces.Select(p => p.Type is PieceType.Normal or PieceType.UserDefined).ToArray(),
                userDefined: model.Pieces.Select(p => p.Type == PieceType.UserDefined).ToArray(),
                scoreCounts: model.Pieces.Select(p => p.Type == PieceType.Normal).ToArray());
        }
    }

    public static SentencePieceTokenizer Load(string path) => new(SentencePieceModelFile.Load(path), path);

    public int VocabSize => _m.Pieces.Count;
    public IReadOnlyDictionary<string, int> SpecialTokens => _special;
    public bool IsSpecial(int id) => id >= 0 && id < _m.Pieces.Count && _m.Pieces[id].Type is PieceType.Control or PieceType.Unknown;
    public int? TokenToId(string token) => _all.TryGetValue(token, out var id) ? id : null;
    public string? IdToToken(int id) => id >= 0 && id < _m.Pieces.Count ? _m.Pieces[id].Piece : null;

    public IReadOnlyList<string> Tokens(IEnumerable<int> ids) =>
        ids.Select(id => IdToToken(id) ?? throw new McException($"{Source}: token id {id} is not in the vocabulary (size {VocabSize})")).ToArray();

    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = true) => EncodeTokens(text).Select(t => t.Id).ToArray();

    public TokenizerEncoding EncodeWithTokens(string text, bool addSpecialTokens = true)
    {
        var tokens = EncodeTokens(text);
        return new TokenizerEncoding(tokens.Select(t => t.Id).ToArray(), tokens.Select(t => t.Text).ToArray());
    }

    public List<Token> EncodeTokens(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var normalized = Normalize(text);
        var tokens = new List<Token>();
        if (normalized.Length == 0) return tokens;
        if (_unigram is not null) _unigram.Tokenize(normalized, tokens);
        else EncodeBpe(normalized, tokens);
        return tokens;
    }

    // ---- normalizer -------------------------------------------------------------------------------

    /// <summary>SentencePiece's Normalizer::Normalize (on UTF-8 bytes, as the C++ code works).</summary>
    public string Normalize(string text)
    {
        if (text.Length == 0) return "";
        var input = Encoding.UTF8.GetBytes(text);
        var output = new byte[input.Length * 3 + 8];
        int length = 0;
        ReadOnlySpan<byte> space = "\u2581"u8;
        void Append(ReadOnlySpan<byte> bytes)
        {
            if (length + bytes.Length > output.Length) Array.Resize(ref output, Math.Max(output.Length * 2, length + bytes.Length));
            bytes.CopyTo(output.AsSpan(length));
            length += bytes.Length;
        }
        int pos = 0;
        if (_m.RemoveExtraWhitespaces)
        {
            while (pos < input.Length)
            {
                var sp = NormalizePrefix(input, pos, out int consumed);
                if (!(sp.Length == 1 && sp[0] == ' ')) break;
                pos += consumed;
            }
        }
        if (pos >= input.Length) return "";
        if (!_m.TreatWhitespaceAsSuffix && _m.AddDummyPrefix) Append(_m.EscapeWhitespaces ? space : " "u8);
        bool isPrevSpace = _m.RemoveExtraWhitespaces;
        while (pos < input.Length)
        {
            var sp = NormalizePrefix(input, pos, out int consumed);
            int start = 0;
            while (isPrevSpace && start < sp.Length && sp[start] == ' ') start++;
            if (start < sp.Length)
            {
                for (int k = start; k < sp.Length; k++)
                {
                    if (_m.EscapeWhitespaces && sp[k] == ' ') Append(space);
                    else Append(sp.Slice(k, 1));
                }
                isPrevSpace = sp[^1] == ' ';
            }
            pos += consumed;
            if (!_m.RemoveExtraWhitespaces) isPrevSpace = false;
        }
        if (_m.RemoveExtraWhitespaces)
        {
            var tail = _m.EscapeWhitespaces ? space : " "u8;
            while (length >= tail.Length && output.AsSpan(length - tail.Length, tail.Length).SequenceEqual(tail)) length -= tail.Length;
        }
        if (_m.TreatWhitespaceAsSuffix && _m.AddDummyPrefix) Append(_m.EscapeWhitespaces ? space : " "u8);
        return Encoding.UTF8.GetString(output, 0, length);
    }

    private static readonly byte[] ReplacementCharacter = [0xEF, 0xBF, 0xBD];

    private ReadOnlySpan<byte> NormalizePrefix(byte[] input, int pos, out int consumed)
    {
        var rest = input.AsSpan(pos);
        foreach (var u in _userDefinedUtf8)
            if (rest.StartsWith(u)) { consumed = u.Length; return u; }
        if (_charsMap.TryLongestPrefix(rest, out consumed, out var replacement)) return replacement;
        var status = System.Text.Rune.DecodeFromUtf8(rest, out _, out int len);
        if (status != System.Buffers.OperationStatus.Done) { consumed = 1; return ReplacementCharacter; }
        consumed = len;
        return rest[..len];
    }

    // ---- BPE model --------------------------------------------------------------------------------

    /// <summary>SentencePiece's bpe::Model::Encode: merge the adjacent pair whose concatenation is the
    /// highest-scoring piece (leftmost on ties) until none is left; unused pieces are split back.</summary>
    private void EncodeBpe(string text, List<Token> into)
    {
        var start = new List<int>();
        var len = new List<int>();
        for (int i = 0; i < text.Length;)
        {
            int l = 0;
            foreach (var u in _userDefined) if (string.CompareOrdinal(text, i, u, 0, u.Length) == 0) { l = u.Length; break; }
            if (l == 0) l = char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]) ? 2 : 1;
            start.Add(i); len.Add(l);
            i += l;
        }
        int n = start.Count;
        var prev = new int[n];
        var next = new int[n];
        var frozen = new bool[n];
        for (int i = 0; i < n; i++) { prev[i] = i - 1; next[i] = i + 1 < n ? i + 1 : -1; frozen[i] = _userDefined.Count > 0 && _pieces.TryGetValue(text.Substring(start[i], len[i]), out var uid) && _m.Pieces[uid].Type == PieceType.UserDefined; }
        var agenda = new PriorityQueue<(int Left, int Right, int Size), (float Score, int Left)>(Comparer<(float Score, int Left)>.Create((a, b) =>
            a.Score != b.Score ? b.Score.CompareTo(a.Score) : a.Left.CompareTo(b.Left)));
        var revMerge = new Dictionary<string, (string, string)>(StringComparer.Ordinal);
        void MaybeAdd(int left, int right)
        {
            if (left == -1 || right == -1 || frozen[left] || frozen[right]) return;
            var piece = text.AsSpan(start[left], len[left] + len[right]);
            if (!_pieceLookup.TryGetValue(piece, out var id)) return;
            agenda.Enqueue((left, right, piece.Length), (_m.Pieces[id].Score, left));
            if (_m.Pieces[id].Type == PieceType.Unused) revMerge[piece.ToString()] = (text.Substring(start[left], len[left]), text.Substring(start[right], len[right]));
        }
        for (int i = 1; i < n; i++) MaybeAdd(i - 1, i);
        while (agenda.TryDequeue(out var top, out _))
        {
            if (len[top.Left] == 0 || len[top.Right] == 0 || len[top.Left] + len[top.Right] != top.Size || next[top.Left] != top.Right) continue;
            len[top.Left] += len[top.Right];
            next[top.Left] = next[top.Right];
            if (next[top.Right] >= 0) prev[next[top.Right]] = top.Left;
            len[top.Right] = 0;
            MaybeAdd(prev[top.Left], top.Left);
            MaybeAdd(top.Left, next[top.Left]);
        }
        bool prevUnk = false;
        for (int i = 0; i != -1 && i < n; i = next[i])
            Resegment(text.Substring(start[i], len[i]), revMerge, into, ref prevUnk);
    }

    private void Resegment(string piece, Dictionary<string, (string, string)> revMerge, List<Token> into, ref bool prevUnk)
    {
        if (!_pieces.TryGetValue(piece, out var id))
        {
            if (_m.ByteFallback)
            {
                foreach (var b in Encoding.UTF8.GetBytes(piece)) into.Add(new Token(_byteIds[b]!.Value, _m.Pieces[_byteIds[b]!.Value].Piece));
                prevUnk = false;
                return;
            }
            if (prevUnk) into[^1] = into[^1] with { Text = into[^1].Text + piece };   // runs of unknowns are one token
            else into.Add(new Token(_m.UnkId, piece));
            prevUnk = true;
            return;
        }
        if (_m.Pieces[id].Type == PieceType.Unused && revMerge.TryGetValue(piece, out var halves))
        {
            Resegment(halves.Item1, revMerge, into, ref prevUnk);
            Resegment(halves.Item2, revMerge, into, ref prevUnk);
            return;
        }
        into.Add(new Token(id, piece));
        prevUnk = false;
    }

    // ---- decoding ---------------------------------------------------------------------------------

    /// <summary>SentencePiece's decoding: control pieces vanish (kept as text when
    /// <paramref name="skipSpecialTokens"/> is false), unknown pieces become the unk surface (" ⁇ "), runs of byte
    /// pieces become UTF-8 text (U+FFFD per invalid byte), "▁" becomes a space and the leading one is dropped.</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true)
    {
        var text = new StringBuilder();
        var bytes = new List<byte>();
        bool isBosWs = true, bosWsSeen = false;
        void Flush()
        {
            var span = bytes.ToArray().AsSpan();
            while (span.Length > 0)
            {
                var status = System.Text.Rune.DecodeFromUtf8(span, out var rune, out int consumed);
                if (status == System.Buffers.OperationStatus.Done) { text.AppendRune(rune); span = span[consumed..]; }
                else { text.Append('\uFFFD'); span = span[1..]; }
            }
            bytes.Clear();
        }
        foreach (var id in ids)
        {
            if (id < 0 || id >= _m.Pieces.Count) continue;
            var p = _m.Pieces[id];
            if (p.Type == PieceType.Byte) { ByteFallbackDecoder.TryByte(p.Piece, out byte b); bytes.Add(b); continue; }
            Flush();
            if (bosWsSeen || text.Length > 0) isBosWs = false;
            string surface;
            bosWsSeen = false;
            if (p.Type == PieceType.Control) surface = skipSpecialTokens ? "" : p.Piece;
            else if (p.Type == PieceType.Unknown) surface = _m.UnkSurface;
            else
            {
                var piece = p.Piece;
                if (isBosWs && (_m.AddDummyPrefix || _m.RemoveExtraWhitespaces) && piece.StartsWith(Space, StringComparison.Ordinal))
                {
                    piece = piece[Space.Length..];
                    bosWsSeen = !_m.RemoveExtraWhitespaces;
                }
                surface = piece.Replace(Space, " ");
            }
            text.Append(surface);
        }
        Flush();
        return text.ToString();
    }
}
