using System.Text;
using System.Text.Json.Nodes;
using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Tokenizers;
using ModelCompiler.Tests.Runtime;

namespace ModelCompiler.Tests.Tokenizers;

/// <summary>Malformed, truncated, hostile and unsupported tokenizer files: each is a one-line McException
/// naming the file (and the JSON path where there is one), never a crash.</summary>
public sealed class TokenizerHostileTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly string[] Probes = ["Hello, world!", "def f(x):\n    return x**2", "naïve café 大语言 🚀", "", "<|endoftext|> [CLS] <unk>"];

    internal static void AssertLoadFails(string path, params string[] contains)
    {
        var e = Assert.ThrowsAny<McException>(() => TokenizerLoader.Load(path));
        Assert.DoesNotContain('\n', e.Message);
        Assert.DoesNotContain('\r', e.Message);
        Assert.Contains(Path.GetFileName(path), e.Message);
        foreach (var c in contains) Assert.Contains(c, e.Message);
    }

    private string Json(string name, string text)
    {
        var path = _dir.File(name);
        File.WriteAllText(path, text);
        return path;
    }

    private static JsonNode Bpe() => JsonNode.Parse(File.ReadAllText(Path.Combine(TokenizerOracleTests.Folder("bpe_bytelevel"), "tokenizer.json")))!;

    private string Edited(Action<JsonNode> edit)
    {
        var j = Bpe();
        edit(j);
        return Json("tokenizer.json", j.ToJsonString());
    }

    [Fact]
    public void MissingPathAndEmptyFolder()
    {
        AssertLoadFails(_dir.File("nothing-here"), "no such file");
        var empty = _dir.File("empty-model");
        Directory.CreateDirectory(empty);
        AssertLoadFails(empty, "no tokenizer.json or tokenizer.model");
    }

    [Theory]
    [InlineData("", "invalid JSON")]
    [InlineData("{", "invalid JSON")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [", "invalid JSON")]
    [InlineData("{\"model\": trualse,\r\"x\": 1}", "invalid JSON", "\\u000d")]   // the parser quotes the bad literal, carriage return and all
    [InlineData("[]", "expected a JSON object")]
    [InlineData("{}", "missing field 'model'")]
    [InlineData("{\"model\": {\"type\": \"Transformer\", \"vocab\": {}}}", "model.type", "unknown model type 'Transformer'")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": [1, 2]}}", "model.vocab", "expected an object")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -3}}}", "model.vocab.a", "must not be negative")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"zero\"}}}", "model.vocab.a", "expected an integer")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b c\"]}}", "model.merges[0]", "not two tokens")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}", "model.merges[0]", "makes 'ab'")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"ab\": 1}, \"merges\": [[\"a\", \"q\"]]}}", "model.merges[0]", "'q'", "not in the vocabulary")]
    [InlineData("{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\"]]}}", "model.vocab[0]", "[piece, score]")]
    [InlineData("{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", -1.0]], \"unk_id\": 7}}", "model.unk_id", "outside the vocabulary")]
    [InlineData("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}, \"normalizer\": {\"type\": \"Shout\"}}", "normalizer.type", "unknown normalizer 'Shout'")]
    [InlineData("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}, \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFC\"}, {}]}}", "normalizer.normalizers[1]", "missing field 'type'")]
    [InlineData("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}, \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(unclosed\"}, \"behavior\": \"Isolated\"}}", "pre_tokenizer.pattern.Regex", "regex")]
    [InlineData("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}, \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": \"Sideways\"}}", "pre_tokenizer.behavior", "unknown split behavior")]
    [InlineData("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}, \"decoder\": {\"type\": \"Telepathy\"}}", "decoder.type", "unknown decoder")]
    [InlineData("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}, \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"[CLS]\", \"type_id\": 0}}], \"special_tokens\": {}}}", "post_processor.single[0].SpecialToken", "'[CLS]' is not in special_tokens")]
    [InlineData("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}, \"added_tokens\": [{\"content\": \"<x>\"}]}", "added_tokens[0]", "missing field 'id'")]
    [InlineData("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}, \"normalizer\": {\"type\": \"Precompiled\", \"precompiled_charsmap\": \"%%%\"}}", "normalizer.precompiled_charsmap", "base64")]
    [InlineData("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}, \"normalizer\": {\"type\": \"Precompiled\", \"precompiled_charsmap\": \"/////wAAAAA=\"}}", "precompiled_charsmap", "declares a trie of")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"\\udc00\": 0}}}", "model.vocab", "invalid \\u escape")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"unk_token\": \"\\ud800\"}}", "model.unk_token", "invalid \\u escape")]
    public void MalformedTokenizerJson(string text, params string[] contains) => AssertLoadFails(Json("tokenizer.json", text), contains);

    [Fact]
    public void TruncatedRealTokenizerJson()
    {
        var bytes = File.ReadAllBytes(Path.Combine(TokenizerOracleTests.Folder("bpe_bytelevel"), "tokenizer.json"));
        foreach (int cut in new[] { 1, 100, bytes.Length / 2, bytes.Length - 2 })
        {
            var path = _dir.File($"cut{cut}.json");
            File.WriteAllBytes(path, bytes[..cut]);
            AssertLoadFails(path, "invalid JSON");
        }
    }

    [Fact]
    public void MergeReferencingAnUnknownToken()
    {
        var path = Edited(j => j["model"]!["merges"]!.AsArray()[5] = JsonValue.Create("Ġ zzzzqq"));
        AssertLoadFails(path, "model.merges[5]", "'zzzzqq'", "not in the vocabulary");
    }

    [Fact]
    public void UnknownModelTypeInARealFile()
    {
        var path = Edited(j => j["model"]!["type"] = "BPE2");
        AssertLoadFails(path, "model.type", "unknown model type 'BPE2'");
    }

    // ---- SentencePiece .model ----------------------------------------------------------------------

    private static byte[] RealModel(string kind = "sentencepiece_bpe") => File.ReadAllBytes(Path.Combine(TokenizerOracleTests.Folder(kind), "tokenizer.model"));

    private string Model(byte[] bytes, string name = "tokenizer.model")
    {
        var path = _dir.File(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static byte[] Varint(ulong v)
    {
        var list = new List<byte>();
        do { byte b = (byte)(v & 0x7F); v >>= 7; list.Add(v != 0 ? (byte)(b | 0x80) : b); } while (v != 0);
        return list.ToArray();
    }

    private static byte[] Field(int number, int wire, byte[] payload) =>
        [.. Varint((ulong)(number << 3 | wire)), .. (wire == 2 ? Varint((ulong)payload.Length) : []), .. payload];

    private static byte[] Piece(string piece, float score, int type) =>
        Field(1, 2, [.. Field(1, 2, Encoding.UTF8.GetBytes(piece)), .. Field(2, 5, BitConverter.GetBytes(score)), .. Field(3, 0, Varint((ulong)type))]);

    [Theory]
    [InlineData(1UL << 62)]
    [InlineData(ulong.MaxValue)]
    [InlineData(1_000_000UL)]
    public void HugeLengthFailsWithoutAllocating(ulong length)
    {
        byte[] bytes = [.. Piece("<unk>", 0, 2), 0x0A, .. Varint(length), 1, 2, 3];
        AssertLoadFails(Model(bytes), "bytes are left");
    }

    [Fact]
    public void HugeLengthInsideAPiece()
    {
        byte[] inner = [0x0A, .. Varint(1UL << 40), 0x41];
        AssertLoadFails(Model([.. Field(1, 2, inner)]), "pieces[0]", "bytes are left");
    }

    [Fact]
    public void TruncatedRealModel()
    {
        var bytes = RealModel();
        foreach (int cut in new[] { 1, 3, 1000, bytes.Length / 2, bytes.Length - 1 })
            AssertLoadFails(Model(bytes[..cut], $"cut{cut}.model"));
    }

    [Theory]
    [InlineData(new byte[0], "no pieces")]
    [InlineData(new byte[] { 0x0B }, "wire type 3")]
    [InlineData(new byte[] { 0x48, 0xFF, 0xFF }, "truncated varint")]
    [InlineData(new byte[] { 0x48, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01 }, "varint longer")]
    [InlineData(new byte[] { 0x08, 0x01 }, "wire type 0, expected 2")]
    [InlineData(new byte[] { 0x00 }, "field number 0")]
    public void BrokenProtobuf(byte[] bytes, string message) => AssertLoadFails(Model(bytes), message);

    [Fact]
    public void InvalidPieces()
    {
        AssertLoadFails(Model([.. Field(1, 2, [.. Field(1, 2, [0xFF, 0xFE])])]), "pieces[0]", "UTF-8");
        AssertLoadFails(Model([.. Piece("<unk>", 0, 2), .. Piece("a", 0, 9)]), "pieces[1]", "piece type 9");
        AssertLoadFails(Model([.. Piece("<unk>", 0, 2), .. Piece("a", float.NaN, 1)]), "pieces[1]", "NaN");
        AssertLoadFails(Model([.. Piece("<unk>", 0, 2), .. Piece("", 0, 1)]), "pieces[1]", "empty piece");
        AssertLoadFails(Model([.. Piece("<unk>", 0, 2), .. Piece("<0xZZ>", 0, 6)]), "pieces[1]", "<0xXX>");
    }

    [Fact]
    public void InconsistentSpecs()
    {
        byte[] pieces = [.. Piece("<unk>", 0, 2), .. Piece("a", -1, 1)];
        AssertLoadFails(Model([.. pieces, .. Field(2, 2, [.. Field(3, 0, [3])])]), "model_type 3", "not supported");
        AssertLoadFails(Model([.. pieces, .. Field(2, 2, [.. Field(40, 0, [7])])]), "unk_id 7");
        AssertLoadFails(Model([.. pieces, .. Field(2, 2, [.. Field(35, 0, [1])])]), "byte_fallback", "256");
        AssertLoadFails(Model([.. pieces, .. Field(3, 2, [.. Field(2, 2, [0xFF, 0xFF, 0, 0, 1, 2])])]), "precompiled_charsmap", "declares a trie");
    }

    [Fact]
    public void MinimalModelWorks()
    {
        byte[] pieces = [.. Piece("<unk>", 0, 2), .. Piece("▁", -1, 1), .. Piece("a", -2, 1), .. Piece("▁a", -0.5f, 1)];
        var t = TokenizerLoader.Load(Model([.. pieces, .. Field(2, 2, [.. Field(3, 0, [2])])]));
        Assert.Equal([3, 3, 1, 0], t.Encode("a a b"));          // "▁a" "▁a" "▁" "b" (not a piece: unknown)
        Assert.Equal("a a ⁇ ", t.Decode([1, 2, 1, 2, 0]));     // the leading "▁" is dropped, <unk> is " ⁇ "
    }

    [Fact]
    public void GarbageFileWithoutExtension()
    {
        var rng = new Random(7);
        var bytes = new byte[4096];
        rng.NextBytes(bytes);
        bytes[0] = 0x0A;
        AssertLoadFails(Model(bytes, "tokenizer.bin"));
    }

    /// <summary>Seeded random corruptions of the real files: each loads and encodes, or fails with a
    /// one-line McException naming the file; nothing else is allowed to escape.</summary>
    [Theory]
    [InlineData("sentencepiece_bpe", "tokenizer.model")]
    [InlineData("sentencepiece_unigram", "tokenizer.model")]
    [InlineData("bpe_bytelevel", "tokenizer.json")]
    [InlineData("wordpiece_bert", "tokenizer.json")]
    [InlineData("unigram_t5", "tokenizer.json")]
    public void RandomCorruptionsFailCleanly(string kind, string file)
    {
        var original = File.ReadAllBytes(Path.Combine(TokenizerOracleTests.Folder(kind), file));
        var rng = new Random(kind.Length * 7919 + 1);
        int loaded = 0, rejected = 0;
        for (int round = 0; round < 60; round++)
        {
            var bytes = (byte[])original.Clone();
            int edits = 1 + rng.Next(4);
            for (int e = 0; e < edits; e++)
            {
                int at = rng.Next(bytes.Length);
                if (file.EndsWith(".json"))
                {
                    // Flip a structural or digit character so the JSON often stays parseable.
                    byte[] choices = "0123456789\"{}[],:-ab "u8.ToArray();
                    bytes[at] = choices[rng.Next(choices.Length)];
                }
                else bytes[at] = (byte)rng.Next(256);
            }
            var path = _dir.File($"{round}-{file}");
            File.WriteAllBytes(path, bytes);
            ITokenizer t;
            try { t = TokenizerLoader.Load(path); }
            catch (McException ex)
            {
                Assert.DoesNotContain('\n', ex.Message);
                Assert.Contains(Path.GetFileName(path), ex.Message);
                rejected++;
                continue;
            }
            loaded++;
            foreach (var probe in Probes)
            {
                try
                {
                    var ids = t.Encode(probe);
                    t.Decode(ids);
                    t.Decode(ids, skipSpecialTokens: false);
                }
                catch (McException ex) { Assert.DoesNotContain('\n', ex.Message); }
            }
        }
        Assert.Equal(60, loaded + rejected);
    }
}
