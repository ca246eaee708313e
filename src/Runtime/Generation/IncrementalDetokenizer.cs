using ModelCompiler.Runtime.Tokenizers;

namespace ModelCompiler.Runtime.Generation;

/// <summary>
/// Turns generated ids into text as they arrive, so that what is printed token by token concatenates to
/// decode(prompt + generated) minus decode(prompt). A few ids before the new ones are decoded with them (decoders
/// such as Metaspace or WordPiece treat a sequence's first token differently), and text ending in U+FFFD is held
/// back, since a byte-level or byte-fallback token may have produced the first bytes of a character whose rest
/// comes with the next token. (The scheme is vLLM's prefix/read offsets.)
/// </summary>
public sealed class IncrementalDetokenizer
{
    /// <summary>Ids decoded before the unread ones, for context.</summary>
    private const int ContextTokens = 6;

    private readonly ITokenizer _tokenizer;
    private readonly List<int> _ids;
    private int _prefixOffset, _readOffset;

    /// <param name="promptIds">the ids already in the sequence (their text is not produced again)</param>
    public IncrementalDetokenizer(ITokenizer tokenizer, IReadOnlyList<int> promptIds)
    {
        _tokenizer = tokenizer;
        _ids = [.. promptIds];
        _readOffset = _ids.Count;
        _prefixOffset = Math.Max(0, _readOffset - ContextTokens);
    }

    /// <summary>Adds one id; returns the text that is now certain (possibly empty).</summary>
    public string Push(int id)
    {
        _ids.Add(id);
        return Release(final: false);
    }

    /// <summary>The text still held back (an incomplete character comes out as U+FFFD, as a full decode gives it).</summary>
    public string Flush() => Release(final: true);

    private string Release(bool final)
    {
        var ids = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_ids);
        var prefix = _tokenizer.Decode(ids[_prefixOffset.._readOffset].ToArray());
        var text = _tokenizer.Decode(ids[_prefixOffset..].ToArray());
        if (text.Length <= prefix.Length || !text.StartsWith(prefix, StringComparison.Ordinal)) return FallBack(final, prefix, text);
        if (!final && text.EndsWith('\uFFFD')) return "";
        _prefixOffset = _readOffset;
        _readOffset = _ids.Count;
        ShrinkContext();
        return text[prefix.Length..];
    }

    /// <summary>Nothing new yet (e.g. a skipped special token), or a token that changed the text before it (no
    /// decoder we load does this): nothing is released until the end, which gives what lies past the old text.</summary>
    private string FallBack(bool final, string prefix, string text)
    {
        if (!final) return "";
        _prefixOffset = _readOffset = _ids.Count;
        return text.Length > prefix.Length ? text[prefix.Length..] : "";
    }

    /// <summary>Keeps the context window at most <see cref="ContextTokens"/> ids before the read offset.</summary>
    private void ShrinkContext() => _prefixOffset = Math.Max(_prefixOffset, _readOffset - ContextTokens);
}
