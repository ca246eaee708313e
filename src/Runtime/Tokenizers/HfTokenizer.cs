namespace ModelCompiler.Runtime.Tokenizers;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> pipeline: added tokens → normalizer → added (normalized) tokens →
/// pre-tokenizer → model → post-processor; decoding maps ids to tokens (skipping special ones) and runs the
/// decoder. Built by <see cref="HfTokenizerJson"/>.
/// </summary>
public sealed class HfTokenizer : ITokenizer
{
    private readonly AddedTokenMatcher _rawMatcher, _normalizedMatcher;
    private readonly Dictionary<int, AddedToken> _addedById = new();
    private readonly Dictionary<string, AddedToken> _addedByContent = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _special = new(StringComparer.Ordinal);

    public string Source { get; }
    public INormalizer? Normalizer { get; }
    public IPreTokenizer? PreTokenizer { get; }
    public ITokenModel Model { get; }
    public IPostProcessor? PostProcessor { get; }
    public IDecoder? Decoder { get; }
    public IReadOnlyList<AddedToken> AddedTokens { get; }
    public SpecialTokenIds SpecialIds { get; internal set; } = new(null, null, null, null);

    public HfTokenizer(string source, ITokenModel model, INormalizer? normalizer, IPreTokenizer? preTokenizer,
        IPostProcessor? postProcessor, IDecoder? decoder, IReadOnlyList<AddedToken> addedTokens)
    {
        Source = source; Model = model; Normalizer = normalizer; PreTokenizer = preTokenizer;
        PostProcessor = postProcessor; Decoder = decoder; AddedTokens = addedTokens;
        foreach (var t in addedTokens)
        {
            _addedById.TryAdd(t.Id, t);
            _addedByContent.TryAdd(t.Content, t);
            if (t.Special) _special.TryAdd(t.Content, t.Id);
        }
        _rawMatcher = new AddedTokenMatcher(addedTokens.Where(t => !t.Normalized).Select(t => (t.Content, t)));
        _normalizedMatcher = new AddedTokenMatcher(addedTokens.Where(t => t.Normalized)
            .Select(t => (normalizer is null ? t.Content : normalizer.Normalize(t.Content), t)));
        VocabSize = Math.Max(model.VocabSize, addedTokens.Count == 0 ? 0 : addedTokens.Max(t => t.Id) + 1);
    }

    public int VocabSize { get; }
    public IReadOnlyDictionary<string, int> SpecialTokens => _special;
    public bool IsSpecial(int id) => _addedById.TryGetValue(id, out var t) && t.Special;

    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = true) => EncodeTokens(text, addSpecialTokens).Select(t => t.Id).ToArray();

    public TokenizerEncoding EncodeWithTokens(string text, bool addSpecialTokens = true)
    {
        var tokens = EncodeTokens(text, addSpecialTokens);
        return new TokenizerEncoding(tokens.Select(t => t.Id).ToArray(), tokens.Select(t => t.Text).ToArray());
    }

    public List<Token> EncodeTokens(string text, bool addSpecialTokens)
    {
        // The model reports what it cannot encode (an unknown token missing from the vocabulary) without knowing
        // which file it came from; the message must name it.
        try { return EncodeTokensCore(text, addSpecialTokens); }
        catch (McException e) when (!e.Message.StartsWith(Source, StringComparison.Ordinal))
        {
            throw new McException($"{Source}: {e.Message}", e);
        }
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private List<Token> EncodeTokensCore(string text, bool addSpecialTokens)
    {
        ArgumentNullException.ThrowIfNull(text);
        var tokens = new List<Token>();
        var words = new List<PreSplit>();
        foreach (var (segment, added, offset) in _rawMatcher.Split(text))
        {
            if (added is not null) { tokens.Add(new Token(added.Id, added.Content)); continue; }
            var normalized = Normalizer is null ? segment : Normalizer.Normalize(segment);
            foreach (var (piece, added2, offset2) in _normalizedMatcher.Split(normalized))
            {
                if (added2 is not null) { tokens.Add(new Token(added2.Id, added2.Content)); continue; }
                words.Clear();
                words.Add(new PreSplit(piece, offset == 0 && offset2 == 0));
                PreTokenizer?.PreTokenize(words);
                foreach (var w in words) Model.Tokenize(w.Text, tokens);
            }
        }
        PostProcessor?.Process(tokens, addSpecialTokens);
        return tokens;
    }

    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true)
    {
        var tokens = new List<string>();
        foreach (var id in ids)
        {
            string? t = _addedById.TryGetValue(id, out var added) ? added.Content : Model.IdToToken(id);
            if (t is null) continue;
            if (skipSpecialTokens && _addedByContent.TryGetValue(t, out var a) && a.Special) continue;
            tokens.Add(t);
        }
        return Decoder is null ? string.Join(" ", tokens) : string.Concat(Decoder.DecodeChain(tokens));
    }

    public IReadOnlyList<string> Tokens(IEnumerable<int> ids) =>
        ids.Select(id => IdToToken(id) ?? throw new McException($"{Source}: token id {id} is not in the vocabulary (size {VocabSize})")).ToArray();

    public int? TokenToId(string token) => _addedByContent.TryGetValue(token, out var a) ? a.Id : Model.TokenToId(token);

    public string? IdToToken(int id) => _addedById.TryGetValue(id, out var a) ? a.Content : Model.IdToToken(id);
}
