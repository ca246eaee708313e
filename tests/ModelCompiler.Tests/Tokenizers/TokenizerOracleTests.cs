using System.Text.Json;
using ModelCompiler.Runtime.Tokenizers;

namespace ModelCompiler.Tests.Tokenizers;

/// <summary>Every case of every folder in tests/tokenizers: exactly the reference library's ids, tokens
/// (or pieces) and decoded text.</summary>
public class TokenizerOracleTests
{
    public static string Folder(string kind) => Path.Combine(AppContext.BaseDirectory, "tokenizers", kind);

    public static TheoryData<string, int> Cases()
    {
        var data = new TheoryData<string, int>();
        foreach (var kind in new[] { "bpe_bytelevel", "wordpiece_bert", "unigram_t5", "sentencepiece_bpe", "sentencepiece_unigram" })
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder(kind), "expected.json")));
            int n = doc.RootElement.GetProperty("cases").GetArrayLength();
            for (int i = 0; i < n; i++) data.Add(kind, i);
        }
        return data;
    }

    private static readonly Dictionary<string, ITokenizer> Loaded = new();

    public static ITokenizer Get(string kind)
    {
        lock (Loaded)
        {
            if (!Loaded.TryGetValue(kind, out var t)) Loaded[kind] = t = TokenizerLoader.Load(Folder(kind));
            return t;
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesTheReference(string kind, int index)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder(kind), "expected.json")));
        var c = doc.RootElement.GetProperty("cases")[index];
        var text = c.GetProperty("text").GetString()!;
        var ids = c.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray();
        var tokenizer = Get(kind);

        var encoding = tokenizer.EncodeWithTokens(text);
        Assert.Equal(ids, encoding.Ids);
        Assert.Equal(ids, tokenizer.Encode(text));
        var tokensField = c.TryGetProperty("tokens", out var t) ? t : c.GetProperty("pieces");
        Assert.Equal(tokensField.EnumerateArray().Select(x => x.GetString()!).ToArray(), encoding.Tokens);
        Assert.Equal(c.GetProperty("decoded").GetString(), tokenizer.Decode(ids));
    }
}
