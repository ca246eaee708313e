using System.Text.Json;
using System.Text.Json.Nodes;
using ModelCompiler.Runtime.Tokenizers;
using ModelCompiler.Runtime.Tokenizers.Unicode;
using SP = ModelCompiler.Runtime.Tokenizers.SentencePiece;

namespace ModelCompiler.Tests.Tokenizers;

/// <summary>Normalizers, pre-tokenizers, decoders and added-token flags against Hugging Face's documented
/// behaviour and Python's unicodedata.</summary>
public class TokenizerComponentTests
{
    [Fact]
    public void UnicodeNormalizationMatchesPythonUnicodedata()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Data", "tokenizers", "normalization_cases.json")));
        int n = 0;
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            var text = c.GetProperty("text").GetString()!;
            Assert.Equal(c.GetProperty("nfc").GetString(), UnicodeNormalizer.Normalize(text, NormalizationKind.Nfc));
            Assert.Equal(c.GetProperty("nfd").GetString(), UnicodeNormalizer.Normalize(text, NormalizationKind.Nfd));
            Assert.Equal(c.GetProperty("nfkc").GetString(), UnicodeNormalizer.Normalize(text, NormalizationKind.Nfkc));
            Assert.Equal(c.GetProperty("nfkd").GetString(), UnicodeNormalizer.Normalize(text, NormalizationKind.Nfkd));
            n++;
        }
        Assert.True(n > 1000);
        Assert.Equal("fi café 1  A Dž é", UnicodeNormalizer.Normalize("ﬁ café ①  Ａ ǅ e\u0301", NormalizationKind.Nfkc));
    }

    [Fact]
    public void LowercaseIsPerCodePointLikeRust()
    {
        Assert.Equal("i\u0307stanbul σς ǆ 𐐨", new LowercaseNormalizer().Normalize("İSTANBUL Σς ǅ 𐐀"));
    }

    [Fact]
    public void BertNormalizerCleansSpacesChineseAndAccents()
    {
        var n = new BertNormalizer(cleanText: true, handleChineseChars: true, stripAccents: null, lowercase: true);
        Assert.Equal("hello world  大 naive", n.Normalize("Héllo\u0000\u200b\tWorld 大naïve"));
        Assert.Equal("a b", new BertNormalizer(true, false, false, false).Normalize("a\u0001\u00a0b"));
        Assert.Equal("a b c", new BertNormalizer(true, false, false, false).Normalize("a\u2028b\u0085 c"));   // White_Space → ' ', but NEL is a control
    }

    private static List<string> Pre(IPreTokenizer p, string text)
    {
        var splits = new List<PreSplit> { new(text, true) };
        p.PreTokenize(splits);
        return splits.Select(s => s.Text).ToList();
    }

    [Theory]
    [InlineData(SplitBehavior.Removed, new[] { "the", "final", "countdown" })]
    [InlineData(SplitBehavior.Isolated, new[] { "the", "-", "final", "-", "-", "countdown" })]
    [InlineData(SplitBehavior.MergedWithPrevious, new[] { "the-", "final-", "-", "countdown" })]
    [InlineData(SplitBehavior.MergedWithNext, new[] { "the", "-final", "-", "-countdown" })]
    [InlineData(SplitBehavior.Contiguous, new[] { "the", "-", "final", "--", "countdown" })]
    public void SplitBehavioursAsDocumented(SplitBehavior behavior, string[] expected)
    {
        Assert.Equal(expected, Pre(new SplitPreTokenizer("-", null, behavior, invert: false), "the-final--countdown"));
        Assert.Equal(expected, Pre(new SplitPreTokenizer(null, new CodePointRegex("-"), behavior, invert: false), "the-final--countdown"));
    }

    [Fact]
    public void PreTokenizers()
    {
        Assert.Equal(["Call ", "1", "2", "3", " please"], Pre(new DigitsPreTokenizer(true), "Call 123 please"));
        Assert.Equal(["Call ", "123", " please"], Pre(new DigitsPreTokenizer(false), "Call 123 please"));
        Assert.Equal(["x", "٣", "²"], Pre(new DigitsPreTokenizer(true), "x٣²"));
        Assert.Equal(["Hey", "man", "!", "How", "are", "you", "?!"], Pre(new WhitespacePreTokenizer(), "Hey man!  How are you?!"));
        Assert.Equal(["Hey", "friend", "!", "How", "are", "you", "?", "!", "?"], Pre(new BertPreTokenizer(), "Hey friend!     How are you?!?"));
        Assert.Equal(["▁Hey", "▁friend!"], Pre(new MetaspacePreTokenizer('▁', "always", true), "Hey friend!"));
        Assert.Equal(["▁Hey▁friend!"], Pre(new MetaspacePreTokenizer('▁', "always", false), "Hey friend!"));
        Assert.Equal(["Hey", "▁friend!"], Pre(new MetaspacePreTokenizer('▁', "never", true), "Hey friend!"));
        Assert.Equal(["Hello", "Ġworld", "!"], Pre(new ByteLevelPreTokenizer(false, true), "Hello world!"));
        Assert.Equal(["ĠHello"], Pre(new ByteLevelPreTokenizer(true, true), "Hello"));
    }

    [Fact]
    public void RegexSeesCodePoints()
    {
        // U+20000 is a letter: the GPT-2 pattern keeps it in the word, as Oniguruma does.
        var re = new CodePointRegex(ByteLevelPreTokenizer.Gpt2Pattern);
        Assert.Equal([(0, 6), (6, 5)], re.Matches(" \U00020000abc 🚀🔥"));
        Assert.Equal([ByteLevelAlphabet.Encode(" \U00020000abc"), ByteLevelAlphabet.Encode(" 🚀🔥")],
            Pre(new ByteLevelPreTokenizer(false, true), " \U00020000abc 🚀🔥"));
    }

    /// <summary>The "Precompiled" normalizer of tokenizer.json (T5, ALBERT) with the nmt_nfkc map of a .model file.</summary>
    [Fact]
    public void PrecompiledNormalizerAppliesTheCharsMap()
    {
        var sp = (SP.SentencePieceTokenizer)TokenizerOracleTests.Get("sentencepiece_unigram");
        var charsMap = Convert.ToBase64String(sp.ModelFile.PrecompiledCharsMap);
        var json = "{\"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}, \"unk_token\": \"a\"}, "
            + "\"normalizer\": {\"type\": \"Precompiled\", \"precompiled_charsmap\": \"" + charsMap + "\"}}";
        var t = HfTokenizerJson.Parse(System.Text.Encoding.UTF8.GetBytes(json), "tokenizer.json");
        var n = Assert.IsType<PrecompiledNormalizer>(t.Normalizer);
        foreach (var text in new[] { "ﬁ", "Ａｂｃ", "①②", "café", "ｶ", "㍿", "½" })
            Assert.Equal(UnicodeNormalizer.Normalize(text, NormalizationKind.Nfkc), n.Normalize(text));
        Assert.Equal("a b", n.Normalize("a\tb"));   // nmt: tab → space
        Assert.Equal("plain ascii", n.Normalize("plain ascii"));
        // A grapheme of 6 UTF-8 bytes or more is mapped char by char (spm_precompiled), so halfwidth ｶﾞ stays
        // two characters there, while SentencePiece itself takes the longest rule and composes ガ.
        Assert.Equal("\u30AB\u3099", n.Normalize("ｶﾞ"));
        Assert.Equal("▁\u30AC", sp.Normalize("ｶﾞ"));
    }

    [Fact]
    public void TokenizerConfigNamesTheSpecialIds()
    {
        using var dir = new Runtime.TempDir();
        File.Copy(Path.Combine(TokenizerOracleTests.Folder("bpe_bytelevel"), "tokenizer.json"), dir.File("tokenizer.json"));
        File.WriteAllText(dir.File("tokenizer_config.json"), """{"eos_token": "<|endoftext|>", "bos_token": {"content": "<|endoftext|>"}, "unk_token": null, "model_max_length": 512}""");
        var t = TokenizerLoader.Load(dir.Path);
        Assert.Equal(new SpecialTokenIds(0, 0, null, null), t.SpecialIds);
        var sp = TokenizerOracleTests.Get("sentencepiece_bpe");
        Assert.Equal(new SpecialTokenIds(1, 2, 0, null), sp.SpecialIds);
        Assert.Equal(2000, sp.VocabSize);
        Assert.True(sp.IsSpecial(1));
        Assert.Equal("<s>", sp.IdToToken(1));
    }

    [Fact]
    public void Decoders()
    {
        Assert.Equal(["叫", "a"], new ByteFallbackDecoder().DecodeChain(["<0xE5>", "<0x8F>", "<0xAB>", "a"]));
        Assert.Equal(["\uFFFD", "\uFFFD", "b"], new ByteFallbackDecoder().DecodeChain(["<0xE5>", "<0x8F>", "b"]));
        Assert.Equal(["Hey", " friend"], new MetaspaceDecoder('▁', true).DecodeChain(["▁Hey", "▁friend"]));
        Assert.Equal([" Hey", " friend"], new MetaspaceDecoder('▁', false).DecodeChain(["▁Hey", "▁friend"]));
        Assert.Equal(["hel", "lo", ".", " don't"], new WordPieceDecoder("##", true).DecodeChain(["hel", "##lo", ".", "do not"]));
        Assert.Equal(["ab", "c"], new StripDecoder(' ', 1, 0).DecodeChain([" ab", "c"]));
        Assert.Equal(["a b"], new SequenceDecoder([new ReplaceDecoder("▁", null, " "), new FuseDecoder()]).DecodeChain(["a", "▁b"]));
        Assert.Equal(["hello world"], new ByteLevelDecoder().DecodeChain(["hello", "Ġworld"]));
    }

    // ---- added tokens ------------------------------------------------------------------------------

    private static HfTokenizer PystoriesWith(object addedToken)
    {
        var j = JsonNode.Parse(File.ReadAllText(Path.Combine(TokenizerOracleTests.Folder("bpe_bytelevel"), "tokenizer.json")))!;
        j["added_tokens"]!.AsArray().Add(JsonNode.Parse(JsonSerializer.Serialize(addedToken)));
        return HfTokenizerJson.Parse(System.Text.Encoding.UTF8.GetBytes(j.ToJsonString()), "tokenizer.json");
    }

    [Fact]
    public void AddedTokenFlags()
    {
        const int mask = 4096, a = 65, b = 66, space = 221, spaceB = 308;
        var plain = PystoriesWith(new { id = mask, content = "<mask>", single_word = false, lstrip = false, rstrip = false, normalized = false, special = true });
        Assert.Equal(spaceB, plain.Encode(" b")[0]);
        Assert.Equal([a, space, mask, spaceB], plain.Encode("a <mask> b"));
        Assert.Equal([a, mask, b], plain.Encode("a<mask>b"));
        Assert.Equal(4097, plain.VocabSize);
        Assert.True(plain.IsSpecial(mask));
        Assert.Equal("a  b", plain.Decode([a, space, mask, spaceB]));
        Assert.Equal("a <mask> b", plain.Decode([a, space, mask, spaceB], skipSpecialTokens: false));

        var lstrip = PystoriesWith(new { id = mask, content = "<mask>", single_word = false, lstrip = true, rstrip = false, normalized = false, special = true });
        Assert.Equal([a, mask, spaceB], lstrip.Encode("a <mask> b"));
        var rstrip = PystoriesWith(new { id = mask, content = "<mask>", single_word = false, lstrip = false, rstrip = true, normalized = false, special = true });
        Assert.Equal([a, space, mask, b], rstrip.Encode("a <mask> b"));
        var single = PystoriesWith(new { id = mask, content = "<mask>", single_word = true, lstrip = false, rstrip = false, normalized = false, special = true });
        Assert.Equal([a, space, mask, spaceB], single.Encode("a <mask> b"));
        Assert.DoesNotContain(mask, single.Encode("a<mask>b"));
    }

    [Fact]
    public void NormalizedAddedTokensMatchAfterNormalization()
    {
        var json = """
        {"model": {"type": "WordLevel", "vocab": {"hello": 0, "world": 1, "[UNK]": 2}, "unk_token": "[UNK]"},
         "normalizer": {"type": "Lowercase"}, "pre_tokenizer": {"type": "WhitespaceSplit"},
         "added_tokens": [{"id": 3, "content": "<Sep>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "special": false},
                          {"id": 4, "content": "[RAW]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}]}
        """;
        var t = HfTokenizerJson.Parse(System.Text.Encoding.UTF8.GetBytes(json), "tokenizer.json");
        Assert.Equal([0, 3, 1, 4, 2], t.Encode("HELLO <SEP> World [RAW] [raw]"));
        Assert.Equal("hello <Sep> world", t.Decode([0, 3, 1, 4]));
        Assert.Equal("hello <Sep> world [RAW]", t.Decode([0, 3, 1, 4], skipSpecialTokens: false));
    }

    /// <summary>A LLaMA-2-style tokenizer.json (SentencePiece BPE as Hugging Face converts it: Prepend/Replace
    /// normalizers, byte fallback, merges ranked by piece score) built from sentencepiece_bpe/tokenizer.model
    /// gives the same ids as the .model itself.</summary>
    [Fact]
    public void LlamaStyleTokenizerJsonAgreesWithTheSentencePieceModel()
    {
        var sp = (SP.SentencePieceTokenizer)TokenizerOracleTests.Get("sentencepiece_bpe");
        var pieces = sp.ModelFile.Pieces;
        var vocab = new JsonObject();
        for (int i = 0; i < pieces.Count; i++) vocab[pieces[i].Piece] = i;
        var ids = pieces.Select((p, i) => (p.Piece, i)).ToDictionary(x => x.Piece, x => x.i);
        var merges = new List<(int Rank, int Left, int Right, string A, string B)>();
        for (int i = 0; i < pieces.Count; i++)
        {
            if (pieces[i].Type != SP.PieceType.Normal) continue;
            var p = pieces[i].Piece;
            for (int k = 1; k < p.Length; k++)
                if (ids.TryGetValue(p[..k], out var l) && ids.TryGetValue(p[k..], out var r)) merges.Add((i, l, r, p[..k], p[k..]));
        }
        var mergeJson = new JsonArray(merges.OrderBy(m => m.Rank).ThenBy(m => m.Left).ThenBy(m => m.Right)
            .Select(m => (JsonNode)new JsonArray(m.A, m.B)).ToArray());
        var json = new JsonObject
        {
            ["added_tokens"] = new JsonArray(
                new JsonObject { ["id"] = 0, ["content"] = "<unk>", ["special"] = true, ["normalized"] = false },
                new JsonObject { ["id"] = 1, ["content"] = "<s>", ["special"] = true, ["normalized"] = false },
                new JsonObject { ["id"] = 2, ["content"] = "</s>", ["special"] = true, ["normalized"] = false }),
            ["normalizer"] = JsonNode.Parse("""{"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}"""),
            ["pre_tokenizer"] = null,
            ["post_processor"] = JsonNode.Parse("""{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}"""),
            ["decoder"] = JsonNode.Parse("""{"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}"""),
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["unk_token"] = "<unk>", ["fuse_unk"] = true, ["byte_fallback"] = true,
                ["vocab"] = vocab, ["merges"] = mergeJson,
            },
        };
        var hf = HfTokenizerJson.Parse(System.Text.Encoding.UTF8.GetBytes(json.ToJsonString()), "llama-style.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TokenizerOracleTests.Folder("sentencepiece_bpe"), "expected.json")));
        int compared = 0;
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            var text = c.GetProperty("text").GetString()!;
            // nmt_nfkc folds tabs/newlines and runs of spaces, which the LLaMA-style normalizer keeps: compare the rest.
            if (text.Length == 0 || text.Any(ch => ch is '\t' or '\n' or '\r') || text.Contains("  ") || text.StartsWith(' ')) continue;
            var expected = c.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray();
            Assert.Equal([1, .. expected], hf.Encode(text));
            Assert.Equal(expected, hf.Encode(text, addSpecialTokens: false));
            Assert.Equal(c.GetProperty("decoded").GetString(), hf.Decode([1, .. expected]));
            compared++;
        }
        Assert.True(compared >= 9, $"compared {compared}");
    }
}
