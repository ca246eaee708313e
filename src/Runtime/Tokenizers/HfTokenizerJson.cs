using System.Text.Json;
using System.Text.RegularExpressions;
using ModelCompiler.Runtime.Tokenizers.SentencePiece;
using ModelCompiler.Runtime.Tokenizers.Unicode;

namespace ModelCompiler.Runtime.Tokenizers;

/// <summary>Builds an <see cref="HfTokenizer"/> from a Hugging Face <c>tokenizer.json</c>. Every malformed,
/// missing or unsupported field is a one-line <see cref="ModelFormatException"/> naming the file and the JSON path.</summary>
public static class HfTokenizerJson
{
    public static HfTokenizer Load(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new McException($"{path}: cannot read: {e.Message}"); }
        return Parse(bytes, path);
    }

    public static HfTokenizer Parse(byte[] utf8Json, string file)
    {
        if (!System.Text.Unicode.Utf8.IsValid(utf8Json))
        {
            int bad = 0;
            System.Text.Unicode.Utf8.ToUtf16(utf8Json, new char[utf8Json.Length], out bad, out _, replaceInvalidSequences: false);
            throw new ModelFormatException($"{file}: not valid UTF-8 text (at byte {bad})");
        }
        JsonDocument doc;
        try { doc = JsonDocument.Parse(utf8Json, new JsonDocumentOptions { MaxDepth = 256 }); }
        catch (JsonException e)
        {
            var where = e.LineNumber is { } line ? $" at line {line + 1}, byte {e.BytePositionInLine + 1}" : "";
            throw new ModelFormatException($"{file}: invalid JSON{where}: {FirstLine(e.Message)}");
        }
        using (doc)
        {
            JsonStrings.RequireDecodable(utf8Json, file, maxDepth: 256);
            var root = new JNode(doc.RootElement, file, "");
            if (root.Kind != JsonValueKind.Object) throw root.Error($"expected a JSON object, found {JNode.Describe(doc.RootElement)}");
            var model = Model(root.Req("model"));
            var normalizer = root.Opt("normalizer") is { } n ? Normalizer(n) : null;
            var added = AddedTokens(root.Opt("added_tokens"));
            var preTokenizer = root.Opt("pre_tokenizer") is { } p ? PreTokenizer(p) : null;
            var post = root.Opt("post_processor") is { } pp ? PostProcessor(pp, model, added) : null;
            var decoder = root.Opt("decoder") is { } d ? Decoder(d) : null;
            return new HfTokenizer(file, model, normalizer, preTokenizer, post, decoder, added);
        }
    }

    private static string FirstLine(string s) => UserText.Detail(s);

    private static List<AddedToken> AddedTokens(JNode? list)
    {
        var result = new List<AddedToken>();
        if (list is null) return result;
        foreach (var t in list.Value.Items())
        {
            bool special = t.Bool("special", false);
            result.Add(new AddedToken(t.Req("id").Id(), t.Str("content"), t.Bool("single_word", false), t.Bool("lstrip", false),
                t.Bool("rstrip", false), t.Bool("normalized", !special), special));
        }
        return result;
    }

    // ---- models -------------------------------------------------------------------------------------

    private static ITokenModel Model(JNode m)
    {
        string? type = m.OptStr("type");
        if (type is null)
        {
            // Older files omit the type: infer it from the fields, as Hugging Face does.
            if (m.Opt("merges") is not null) type = "BPE";
            else if (m.Opt("continuing_subword_prefix") is not null || m.Opt("max_input_chars_per_word") is not null) type = "WordPiece";
            else if (m.Opt("vocab") is { Kind: JsonValueKind.Array }) type = "Unigram";
            else if (m.Opt("vocab") is not null) type = "WordLevel";
            else throw m.Error("missing field 'type'");
        }
        return type switch
        {
            "BPE" => Bpe(m),
            "WordPiece" => new WordPieceModel(VocabMap(m.Req("vocab")), m.OptStr("unk_token") ?? "[UNK]",
                m.OptStr("continuing_subword_prefix") ?? "##", m.Int("max_input_chars_per_word", 100)),
            "WordLevel" => new WordLevelModel(VocabMap(m.Req("vocab")), m.OptStr("unk_token")),
            "Unigram" => Unigram(m),
            _ => throw m.Req("type").Error($"unknown model type '{type}' (supported: BPE, WordPiece, WordLevel, Unigram)"),
        };
    }

    private static Vocab VocabMap(JNode v)
    {
        var map = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (name, id) in v.Props()) map[name] = id.Id();
        return new Vocab(map);
    }

    private static BpeModel Bpe(JNode m)
    {
        var vocab = VocabMap(m.Req("vocab"));
        if (m.Opt("dropout") is { } dropout && dropout.Num() is var p && p is < 0 or > 1) throw dropout.Error($"dropout must be in [0, 1], found {p}");
        var prefix = m.OptStr("continuing_subword_prefix");
        var merges = new Dictionary<long, (int, int)>();
        int rank = 0;
        if (m.Opt("merges") is { } list)
        {
            foreach (var item in list.Items())
            {
                string a, b;
                if (item.Kind == JsonValueKind.String)
                {
                    var s = item.Str();
                    var parts = s.Split(' ');
                    if (parts.Length != 2) throw item.Error($"merge '{s}' is not two tokens separated by one space");
                    (a, b) = (parts[0], parts[1]);
                }
                else
                {
                    var pair = item.Items().ToList();
                    if (pair.Count != 2) throw item.Error($"a merge must be a pair of tokens, found {pair.Count} items");
                    (a, b) = (pair[0].Str(), pair[1].Str());
                }
                if (!vocab.ToId.TryGetValue(a, out var ia)) throw item.Error($"merge '{a} {b}' uses '{a}', which is not in the vocabulary");
                if (!vocab.ToId.TryGetValue(b, out var ib)) throw item.Error($"merge '{a} {b}' uses '{b}', which is not in the vocabulary");
                int cut = prefix is not null && b.Length >= prefix.Length ? prefix.Length : 0;
                var merged = a + b[cut..];
                if (!vocab.ToId.TryGetValue(merged, out var id)) throw item.Error($"merge '{a} {b}' makes '{merged}', which is not in the vocabulary");
                merges.TryAdd(BpeModel.Key(ia, ib), (rank, id));
                rank++;
            }
        }
        return new BpeModel(vocab, merges, m.OptStr("unk_token"), prefix, m.OptStr("end_of_word_suffix"),
            m.Bool("fuse_unk", false), m.Bool("byte_fallback", false), m.Bool("ignore_merges", false));
    }

    private static UnigramModel Unigram(JNode m)
    {
        var items = m.Req("vocab").Items().ToList();
        var pieces = new string[items.Count];
        var scores = new double[items.Count];
        for (int i = 0; i < items.Count; i++)
        {
            var pair = items[i].Items().ToList();
            if (pair.Count != 2) throw items[i].Error($"a Unigram vocabulary entry must be [piece, score], found {pair.Count} items");
            pieces[i] = pair[0].Str();
            scores[i] = pair[1].Num();
        }
        int? unk = m.Opt("unk_id")?.Id();
        if (unk is { } u && u >= pieces.Length) throw m.Req("unk_id").Error($"unk_id {u} is outside the vocabulary of {pieces.Length}");
        return new UnigramModel(pieces, scores, unk, m.Bool("byte_fallback", false));
    }

    // ---- normalizers --------------------------------------------------------------------------------

    private static INormalizer Normalizer(JNode n) => n.Type() switch
    {
        "NFC" => new UnicodeFormNormalizer(NormalizationKind.Nfc),
        "NFD" => new UnicodeFormNormalizer(NormalizationKind.Nfd),
        "NFKC" => new UnicodeFormNormalizer(NormalizationKind.Nfkc),
        "NFKD" => new UnicodeFormNormalizer(NormalizationKind.Nfkd),
        "Lowercase" => new LowercaseNormalizer(),
        "StripAccents" => new StripAccentsNormalizer(),
        "Strip" => new StripNormalizer(n.Bool("strip_left", true), n.Bool("strip_right", true)),
        "Replace" => Pattern(n.Req("pattern")) is var (lit, re) ? new ReplaceNormalizer(lit, re, n.Str("content")) : null!,
        "Prepend" => new PrependNormalizer(n.Str("prepend")),
        "Nmt" => new NmtNormalizer(),
        "ByteLevel" => new ByteLevelNormalizer(),
        "Precompiled" => new PrecompiledNormalizer(Precompiled(n)),
        "BertNormalizer" => new BertNormalizer(n.Bool("clean_text", true), n.Bool("handle_chinese_chars", true),
            n.Opt("strip_accents")?.Bool(), n.Bool("lowercase", true)),
        "Sequence" => new SequenceNormalizer(n.Req("normalizers").Items().Select(Normalizer).ToList()),
        var t => throw n.Req("type").Error($"unknown normalizer '{t}'"),
    };

    private static PrecompiledCharsMap Precompiled(JNode n)
    {
        var field = n.Opt("precompiled_charsmap");
        if (field is null) return PrecompiledCharsMap.Empty;
        byte[] blob;
        try { blob = Convert.FromBase64String(field.Value.Str()); }
        catch (FormatException) { throw field.Value.Error("precompiled_charsmap is not valid base64"); }
        return PrecompiledCharsMap.Parse(blob, $"{n.File}: {field.Value.Path}");
    }

    /// <summary>A {"String": "..."} or {"Regex": "..."} pattern.</summary>
    private static (string?, CodePointRegex?) Pattern(JNode p)
    {
        if (p.Kind == JsonValueKind.String) return (p.Str(), null);
        if (p.Opt("String") is { } s) return (s.Str(), null);
        if (p.Opt("Regex") is { } r) return (null, Regex(r));
        throw p.Error("expected a pattern {\"String\": ...} or {\"Regex\": ...}");
    }

    private static CodePointRegex Regex(JNode r)
    {
        try { return new CodePointRegex(r.Str()); }
        catch (ArgumentException e) { throw r.Error($"regex not supported: {FirstLine(e.Message)}"); }
    }

    // ---- pre-tokenizers -----------------------------------------------------------------------------

    private static IPreTokenizer PreTokenizer(JNode p) => p.Type() switch
    {
        "ByteLevel" => new ByteLevelPreTokenizer(p.Bool("add_prefix_space", true), p.Bool("use_regex", true)),
        "Metaspace" => new MetaspacePreTokenizer(Replacement(p), PrependScheme(p), p.Bool("split", true)),
        "BertPreTokenizer" => new BertPreTokenizer(),
        "Whitespace" => new WhitespacePreTokenizer(),
        "WhitespaceSplit" => new WhitespaceSplitPreTokenizer(),
        "Punctuation" => new PunctuationPreTokenizer(Behavior(p.Opt("behavior"), SplitBehavior.Isolated)),
        "Digits" => new DigitsPreTokenizer(p.Bool("individual_digits", false)),
        "CharDelimiterSplit" => new CharDelimiterPreTokenizer(SingleChar(p.Req("delimiter"))),
        "Split" => Pattern(p.Req("pattern")) is var (lit, re)
            ? new SplitPreTokenizer(lit, re, Behavior(p.Opt("behavior"), SplitBehavior.Isolated), p.Bool("invert", false)) : null!,
        "Sequence" => new SequencePreTokenizer(p.Req("pretokenizers").Items().Select(PreTokenizer).ToList()),
        var t => throw p.Req("type").Error($"unknown pre-tokenizer '{t}'"),
    };

    private static char Replacement(JNode p)
    {
        var r = p.Opt("replacement");
        if (r is null) return '\u2581';
        var s = r.Value.Str();
        if (s.Length != 1) throw r.Value.Error($"replacement must be one character, found '{s}'");
        return s[0];
    }

    private static int SingleChar(JNode c)
    {
        var s = c.Str();
        var runes = s.EnumerateRunes().ToList();
        if (runes.Count != 1) throw c.Error($"expected one character, found '{s}'");
        return runes[0].Value;
    }

    private static string PrependScheme(JNode p)
    {
        if (p.Opt("prepend_scheme") is { } s)
        {
            var v = s.Str();
            if (v is not ("always" or "first" or "never")) throw s.Error($"prepend_scheme must be always, first or never, found '{v}'");
            return v;
        }
        return p.Bool("add_prefix_space", true) ? "always" : "never";
    }

    private static SplitBehavior Behavior(JNode? b, SplitBehavior @default)
    {
        if (b is null) return @default;
        var v = b.Value.Str();
        return v switch
        {
            "Removed" => SplitBehavior.Removed,
            "Isolated" => SplitBehavior.Isolated,
            "MergedWithPrevious" => SplitBehavior.MergedWithPrevious,
            "MergedWithNext" => SplitBehavior.MergedWithNext,
            "Contiguous" => SplitBehavior.Contiguous,
            _ => throw b.Value.Error($"unknown split behavior '{v}' (Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous)"),
        };
    }

    // ---- post-processors ----------------------------------------------------------------------------

    private static IPostProcessor PostProcessor(JNode p, ITokenModel model, List<AddedToken> added) => p.Type() switch
    {
        "TemplateProcessing" => Template(p),
        "BertProcessing" => new ClsSepPostProcessor(StrIdPair(p.Req("cls")), StrIdPair(p.Req("sep"))),
        "RobertaProcessing" => new ClsSepPostProcessor(StrIdPair(p.Req("cls")), StrIdPair(p.Req("sep"))),
        "ByteLevel" => new NoOpPostProcessor(),
        "Sequence" => new SequencePostProcessor(p.Req("processors").Items().Select(x => PostProcessor(x, model, added)).ToList()),
        var t => throw p.Req("type").Error($"unknown post-processor '{t}'"),
    };

    private static Token StrIdPair(JNode pair)
    {
        var items = pair.Items().ToList();
        if (items.Count != 2) throw pair.Error($"expected [token, id], found {items.Count} items");
        return new Token(items[1].Id(), items[0].Str());
    }

    private static TemplatePostProcessor Template(JNode p)
    {
        var specials = new Dictionary<string, List<Token>>(StringComparer.Ordinal);
        if (p.Opt("special_tokens") is { } st)
        {
            foreach (var (name, v) in st.Props())
            {
                var ids = v.Req("ids").Items().Select(i => i.Id()).ToList();
                var tokens = v.Req("tokens").Items().Select(i => i.Str()).ToList();
                if (ids.Count != tokens.Count) throw v.Error($"special token '{name}' has {ids.Count} ids but {tokens.Count} tokens");
                specials[name] = ids.Zip(tokens, (i, t) => new Token(i, t)).ToList();
            }
        }
        var single = new List<(bool, IReadOnlyList<Token>)>();
        var template = p.Req("single");
        if (template.Kind == JsonValueKind.String)
        {
            foreach (var part in template.Str().Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                var name = part.Split(':')[0];
                if (name is "$A" or "$" or "$0") single.Add((true, []));
                else if (name.StartsWith('$')) throw template.Error($"the single template uses '{name}', but only sequence A exists");
                else single.Add((false, specials.TryGetValue(name, out var s) ? s : throw template.Error($"special token '{name}' is not in special_tokens")));
            }
            return new TemplatePostProcessor(single);
        }
        foreach (var piece in template.Items())
        {
            if (piece.Opt("Sequence") is { } seq)
            {
                var id = seq.Str("id");
                if (id != "A") throw seq.Error($"the single template uses sequence '{id}', but only A exists");
                single.Add((true, []));
            }
            else if (piece.Opt("SpecialToken") is { } sp)
            {
                var id = sp.Str("id");
                single.Add((false, specials.TryGetValue(id, out var s) ? s : throw sp.Error($"special token '{id}' is not in special_tokens")));
            }
            else throw piece.Error("expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
        }
        return new TemplatePostProcessor(single);
    }

    // ---- decoders -----------------------------------------------------------------------------------

    private static IDecoder Decoder(JNode d) => d.Type() switch
    {
        "ByteLevel" => new ByteLevelDecoder(),
        "Metaspace" => new MetaspaceDecoder(Replacement(d), PrependScheme(d) != "never"),
        "WordPiece" => new WordPieceDecoder(d.OptStr("prefix") ?? "##", d.Bool("cleanup", true)),
        "BPEDecoder" => new BpeSuffixDecoder(d.OptStr("suffix") ?? "</w>"),
        "ByteFallback" => new ByteFallbackDecoder(),
        "Fuse" => new FuseDecoder(),
        "Strip" => new StripDecoder(StripChar(d.Req("content")), d.Int("start", 0), d.Int("stop", 0)),
        "Replace" => Pattern(d.Req("pattern")) is var (lit, re) ? new ReplaceDecoder(lit, re, d.Str("content")) : null!,
        "CTC" => new CtcDecoder(d.OptStr("pad_token") ?? "<pad>", d.OptStr("word_delimiter_token") ?? "|", d.Bool("cleanup", true)),
        "Sequence" => new SequenceDecoder(d.Req("decoders").Items().Select(Decoder).ToList()),
        var t => throw d.Req("type").Error($"unknown decoder '{t}'"),
    };

    private static char StripChar(JNode c)
    {
        var s = c.Str();
        if (s.Length != 1) throw c.Error($"expected one character, found '{s}'");
        return s[0];
    }
}
