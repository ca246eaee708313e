using System.Text;
using ModelCompiler.Runtime.Tokenizers.Unicode;

namespace ModelCompiler.Runtime.Tokenizers;

/// <summary>Turns one pre-tokenized word into tokens (Hugging Face's models).</summary>
public interface ITokenModel
{
    void Tokenize(string word, List<Token> into);
    int? TokenToId(string token);
    string? IdToToken(int id);
    /// <summary>One more than the largest id.</summary>
    int VocabSize { get; }
}

/// <summary>A vocabulary: token → id and id → token.</summary>
internal sealed class Vocab
{
    public readonly Dictionary<string, int> ToId;
    // id → token as an array when the ids are dense; a file's ids far beyond its entry count (one token with id
    // 2,000,000,000) would otherwise size a multi-gigabyte array from a claim, so they go in a dictionary.
    private readonly string?[]? _dense;
    private readonly Dictionary<int, string>? _sparse;

    /// <summary>The largest id plus one.</summary>
    public int Size { get; }

    public Vocab(Dictionary<string, int> toId)
    {
        ToId = toId;
        int max = toId.Count == 0 ? -1 : toId.Values.Max();
        Size = (int)Math.Min((long)max + 1, int.MaxValue);
        if ((long)max < 2L * toId.Count + 1024)
        {
            _dense = new string?[max + 1];
            foreach (var (t, id) in toId) _dense[id] ??= t;
        }
        else
        {
            _sparse = new Dictionary<int, string>();
            foreach (var (t, id) in toId) _sparse.TryAdd(id, t);
        }
    }

    public string? Token(int id) => _dense is not null
        ? (id >= 0 && id < _dense.Length ? _dense[id] : null)
        : _sparse!.GetValueOrDefault(id);
}

/// <summary>Byte-pair encoding by merge rank (byte-level like GPT-2, or SentencePiece-style with byte fallback).</summary>
public sealed class BpeModel : ITokenModel
{
    private readonly Vocab _vocab;
    private readonly Dictionary<long, (int Rank, int NewId)> _merges;
    private readonly string? _unk, _prefix, _suffix;
    private readonly bool _fuseUnk, _byteFallback, _ignoreMerges;
    private readonly int?[] _byteIds = new int?[256];
    private readonly Dictionary<string, Token[]> _cache = new(StringComparer.Ordinal);
    private readonly Lock _cacheLock = new();
    private const int MaxCacheEntries = 200_000, MaxCachedWordLength = 256;

    internal BpeModel(Vocab vocab, Dictionary<long, (int, int)> merges, string? unk, string? prefix, string? suffix, bool fuseUnk, bool byteFallback, bool ignoreMerges)
    {
        _vocab = vocab; _merges = merges; _unk = unk; _prefix = prefix; _suffix = suffix;
        _fuseUnk = fuseUnk; _byteFallback = byteFallback; _ignoreMerges = ignoreMerges;
        for (int b = 0; b < 256; b++) _byteIds[b] = vocab.ToId.TryGetValue($"<0x{b:X2}>", out var id) ? id : null;
    }

    public int VocabSize => _vocab.Size;
    public int? TokenToId(string token) => _vocab.ToId.TryGetValue(token, out var id) ? id : null;
    public string? IdToToken(int id) => _vocab.Token(id);

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public void Tokenize(string word, List<Token> into)
    {
        if (word.Length == 0) return;
        if (_ignoreMerges && _vocab.ToId.TryGetValue(word, out var whole)) { into.Add(new Token(whole, word)); return; }
        Token[]? cached;
        lock (_cacheLock) _cache.TryGetValue(word, out cached);
        if (cached is null)
        {
            cached = Merge(word);
            if (word.Length <= MaxCachedWordLength)
                lock (_cacheLock) { if (_cache.Count >= MaxCacheEntries) _cache.Clear(); _cache[word] = cached; }
        }
        into.AddRange(cached);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private Token[] Merge(string w)
    {
        // Initial symbols, one per code point (a port of BPE::merge_word).
        var ids = new List<int>(w.Length);
        int? unkId = _unk is null ? null : TokenToId(_unk);
        bool pendingUnk = false;
        for (int i = 0; i < w.Length;)
        {
            var (_, len) = CharInfo.At(w, i);
            bool first = i == 0, last = i + len == w.Length;
            string s = w.Substring(i, len);
            if (!first && _prefix is not null) s = _prefix + s;
            if (last && _suffix is not null) s += _suffix;
            if (_vocab.ToId.TryGetValue(s, out var id))
            {
                if (pendingUnk) { ids.Add(unkId!.Value); pendingUnk = false; }
                ids.Add(id);
            }
            else
            {
                bool done = false;
                if (_byteFallback)
                {
                    var bytes = Encoding.UTF8.GetBytes(s);
                    if (bytes.All(b => _byteIds[b] is not null)) { foreach (var b in bytes) ids.Add(_byteIds[b]!.Value); done = true; }
                }
                if (!done && _unk is not null)
                {
                    if (unkId is null) throw new McException($"BPE: the unknown token {UserText.Quote(_unk)} is not in the vocabulary");
                    if (pendingUnk && !_fuseUnk) ids.Add(unkId.Value);
                    pendingUnk = true;
                }
            }
            i += len;
        }
        if (pendingUnk) ids.Add(unkId!.Value);

        if (ids.Count > 1) MergeAll(ids);
        var result = new Token[ids.Count];
        for (int i = 0; i < ids.Count; i++) result[i] = new Token(ids[i], _vocab.Token(ids[i]) ?? "");
        return result;
    }

    /// <summary>Applies merges lowest rank first, leftmost first among equal ranks (a port of Word::merge_all).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private void MergeAll(List<int> ids)
    {
        int n = ids.Count;
        var c = ids.ToArray();
        var prev = new int[n];
        var next = new int[n];
        var alive = new bool[n];
        for (int i = 0; i < n; i++) { prev[i] = i - 1; next[i] = i + 1 < n ? i + 1 : -1; alive[i] = true; }
        var queue = new PriorityQueue<(int Pos, int NewId), long>();
        for (int i = 0; i + 1 < n; i++)
            if (_merges.TryGetValue(Key(c[i], c[i + 1]), out var m)) queue.Enqueue((i, m.NewId), Priority(m.Rank, i));
        while (queue.TryDequeue(out var top, out _))
        {
            int pos = top.Pos;
            if (!alive[pos] || next[pos] == -1) continue;
            int right = next[pos];
            if (!_merges.TryGetValue(Key(c[pos], c[right]), out var m) || m.NewId != top.NewId) continue;
            c[pos] = top.NewId;
            alive[right] = false;
            next[pos] = next[right];
            if (next[right] != -1) prev[next[right]] = pos;
            if (prev[pos] >= 0 && _merges.TryGetValue(Key(c[prev[pos]], c[pos]), out var mp)) queue.Enqueue((prev[pos], mp.NewId), Priority(mp.Rank, prev[pos]));
            if (next[pos] != -1 && _merges.TryGetValue(Key(c[pos], c[next[pos]]), out var mn)) queue.Enqueue((pos, mn.NewId), Priority(mn.Rank, pos));
        }
        ids.Clear();
        for (int i = 0; i != -1 && i < n; i = next[i]) ids.Add(c[i]);
    }

    internal static long Key(int a, int b) => ((long)a << 32) | (uint)b;
    private static long Priority(int rank, int pos) => ((long)rank << 32) | (uint)pos;
}

/// <summary>BERT's greedy longest-match-first WordPiece.</summary>
public sealed class WordPieceModel : ITokenModel
{
    private readonly Vocab _vocab;
    private readonly string _unk, _prefix;
    private readonly int _maxChars;

    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _words;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _continuations;   // prefix removed

    internal WordPieceModel(Vocab vocab, string unk, string prefix, int maxChars)
    {
        _vocab = vocab; _unk = unk; _prefix = prefix; _maxChars = maxChars;
        var cont = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (t, id) in vocab.ToId) if (t.StartsWith(prefix, StringComparison.Ordinal)) cont.TryAdd(t[prefix.Length..], id);
        _words = new Dictionary<string, int>(vocab.ToId, StringComparer.Ordinal).GetAlternateLookup<ReadOnlySpan<char>>();
        _continuations = cont.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    public int VocabSize => _vocab.Size;
    public int? TokenToId(string token) => _vocab.ToId.TryGetValue(token, out var id) ? id : null;
    public string? IdToToken(int id) => _vocab.Token(id);

    public void Tokenize(string word, List<Token> into)
    {
        int chars = 0;
        foreach (var _ in word.EnumerateRunes()) chars++;
        if (chars > _maxChars) { into.Add(Unk()); return; }
        int mark = into.Count;
        int start = 0;
        while (start < word.Length)
        {
            int end = word.Length;
            Token? found = null;
            while (start < end)
            {
                var sub = word.AsSpan(start, end - start);
                if ((start == 0 ? _words : _continuations).TryGetValue(sub, out var id)) { found = new Token(id, _vocab.Token(id)!); break; }
                end -= end - 2 >= start && char.IsLowSurrogate(word[end - 1]) && char.IsHighSurrogate(word[end - 2]) ? 2 : 1;
            }
            if (found is null) { into.RemoveRange(mark, into.Count - mark); into.Add(Unk()); return; }
            into.Add(found.Value);
            start = end;
        }
    }

    private Token Unk() => _vocab.ToId.TryGetValue(_unk, out var id) ? new Token(id, _unk)
        : throw new McException($"WordPiece: the unknown token {UserText.Quote(_unk)} is not in the vocabulary");
}

/// <summary>A plain word → id lookup.</summary>
public sealed class WordLevelModel : ITokenModel
{
    private readonly Vocab _vocab;
    private readonly string? _unk;

    internal WordLevelModel(Vocab vocab, string? unk) { _vocab = vocab; _unk = unk; }

    public int VocabSize => _vocab.Size;
    public int? TokenToId(string token) => _vocab.ToId.TryGetValue(token, out var id) ? id : null;
    public string? IdToToken(int id) => _vocab.Token(id);

    public void Tokenize(string word, List<Token> into)
    {
        if (_vocab.ToId.TryGetValue(word, out var id)) into.Add(new Token(id, word));
        else if (_unk is not null && _vocab.ToId.TryGetValue(_unk, out var unk)) into.Add(new Token(unk, _unk));
        else throw new McException($"WordLevel: {UserText.Quote(word)} is not in the vocabulary and there is no unknown token");
    }
}
