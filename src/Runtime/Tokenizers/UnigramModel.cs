using System.Text;

namespace ModelCompiler.Runtime.Tokenizers;

/// <summary>A character trie over token strings (UTF-16 units), for common-prefix search.</summary>
internal sealed class CharTrie
{
    private readonly Dictionary<long, int> _edges = new();
    private readonly List<int> _value = [-1];

    public void Add(string key, int value)
    {
        int node = 0;
        foreach (char c in key)
        {
            long k = ((long)node << 16) | c;
            if (!_edges.TryGetValue(k, out var child)) { child = _value.Count; _value.Add(-1); _edges[k] = child; }
            node = child;
        }
        _value[node] = value;
    }

    public PrefixEnumerator Matches(string text, int start) => new(this, text, start);

    /// <summary>The keys that are prefixes of text[start..], shortest first, without allocating.</summary>
    public struct PrefixEnumerator(CharTrie trie, string text, int start)
    {
        private int _node, _i = start;

        public bool Next(out int end, out int value)
        {
            while (_i < text.Length)
            {
                if (!trie._edges.TryGetValue(((long)_node << 16) | text[_i], out _node)) { _i = text.Length; break; }
                _i++;
                if (trie._value[_node] >= 0) { end = _i; value = trie._value[_node]; return true; }
            }
            end = 0; value = -1;
            return false;
        }
    }
}

/// <summary>
/// The unigram language model: the segmentation with the best total score (Viterbi). Consecutive unknown
/// characters make one unknown token (Hugging Face's fuse_unk; SentencePiece merges them the same way), which
/// byte fallback turns into &lt;0xXX&gt; tokens. <see cref="SentencePieceMode"/> follows the C++ library
/// instead of the Rust one: float scores, unused pieces skipped, only normal and user-defined pieces matched.
/// </summary>
public sealed class UnigramModel : ITokenModel
{
    private const double UnkPenalty = 10.0;
    private readonly string[] _pieces;
    private readonly double[] _scores;
    private readonly Dictionary<string, int> _toId = new(StringComparer.Ordinal);
    private readonly CharTrie _trie = new();
    private readonly int? _unkId;
    private readonly bool _byteFallback;
    private readonly double _minScore, _maxScore;
    private readonly bool[]? _userDefined;
    private readonly int?[] _byteIds = new int?[256];

    public bool SentencePieceMode { get; }

    /// <param name="matchable">which pieces the lattice may use (null: all)</param>
    internal UnigramModel(string[] pieces, double[] scores, int? unkId, bool byteFallback, bool sentencePieceMode = false,
        bool[]? matchable = null, bool[]? userDefined = null, bool[]? scoreCounts = null)
    {
        _pieces = pieces; _scores = scores; _unkId = unkId; _byteFallback = byteFallback;
        SentencePieceMode = sentencePieceMode; _userDefined = userDefined;
        double min = double.MaxValue, max = sentencePieceMode ? 1.17549435e-38 : double.MinValue; // SentencePiece starts at FLT_MIN
        for (int i = 0; i < pieces.Length; i++)
        {
            _toId[pieces[i]] = i;
            if (matchable is null || matchable[i]) _trie.Add(pieces[i], i);
            if (scoreCounts is null || scoreCounts[i]) { min = Math.Min(min, scores[i]); max = Math.Max(max, scores[i]); }
        }
        _minScore = min == double.MaxValue ? 0 : min;
        _maxScore = max;
        for (int b = 0; b < 256; b++) _byteIds[b] = _toId.TryGetValue($"<0x{b:X2}>", out var id) ? id : null;
    }

    public int VocabSize => _pieces.Length;
    public int? TokenToId(string token) => _toId.TryGetValue(token, out var id) ? id : null;
    public string? IdToToken(int id) => id >= 0 && id < _pieces.Length ? _pieces[id] : null;

    public void Tokenize(string text, List<Token> into)
    {
        if (text.Length == 0) return;
        int n = text.Length;
        var best = new double[n + 1];
        var startsAt = new int[n + 1];
        var ids = new int[n + 1];
        Array.Fill(startsAt, -1);
        double unkScore = _minScore - UnkPenalty;
        float unkScoreF = (float)_minScore - (float)UnkPenalty;
        for (int start = 0; start < n;)
        {
            int charLen = char.IsHighSurrogate(text[start]) && start + 1 < n && char.IsLowSurrogate(text[start + 1]) ? 2 : 1;
            double here = best[start];
            bool single = false;
            for (var m = _trie.Matches(text, start); m.Next(out int end, out int id);)
            {
                double score = _scores[id];
                if (_userDefined is not null && _userDefined[id]) score = Encoding.UTF8.GetByteCount(text.AsSpan(start, end - start)) * _maxScore - 0.1;
                double candidate = SentencePieceMode ? (float)score + (float)here : score + here;
                if (startsAt[end] < 0 || candidate > best[end]) { best[end] = candidate; startsAt[end] = start; ids[end] = id; }
                if (end - start == charLen) single = true;
            }
            if (!single)
            {
                int end = start + charLen;
                double candidate = SentencePieceMode ? unkScoreF + (float)here : unkScore + here;
                if (startsAt[end] < 0 || candidate > best[end]) { best[end] = candidate; startsAt[end] = start; ids[end] = _unkId ?? -1; }
            }
            start += charLen;
        }

        // Back-track, fusing runs of unknown characters.
        var pieces = new List<(int Start, int End, int Id)>();
        for (int end = n; end > 0;)
        {
            int s = startsAt[end];
            if (s < 0) throw new McException("Unigram: no segmentation of the text (the vocabulary has no unknown token)");
            int id = ids[end];
            if (id == -1 && _unkId is null) throw new McException("Unigram: a character is not in the vocabulary and there is no unknown token");
            if (_unkId is { } unk && id == unk && pieces.Count > 0 && pieces[^1].Id == unk) pieces[^1] = (s, pieces[^1].End, unk);
            else pieces.Add((s, end, id));
            end = s;
        }
        pieces.Reverse();
        foreach (var (s, e, nodeId) in pieces)
        {
            var piece = text[s..e];
            int id = nodeId;
            if (SentencePieceMode ? id != _unkId : _toId.TryGetValue(piece, out id)) { into.Add(new Token(id, piece)); continue; }
            if (_byteFallback)
            {
                var bytes = Encoding.UTF8.GetBytes(piece);
                if (bytes.All(b => _byteIds[b] is not null))
                {
                    foreach (var b in bytes) into.Add(new Token(_byteIds[b]!.Value, _pieces[_byteIds[b]!.Value]));
                    continue;
                }
            }
            into.Add(new Token(_unkId!.Value, piece));
        }
    }
}
