using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace ModelCompiler.Tests.Tokenizers;

/// <summary>
/// Microsoft.ML.Tokenizers' BpeTokenizer (byte-level, GPT-2 regex) is an independent implementation that
/// passes the bpe_bytelevel oracle; ours must give the same ids on every document of the pystories eval text.
/// (Its SentencePiece and BERT tokenizers do not pass our oracles, so they are not used: see the runtime's README.)
/// </summary>
public class MlTokenizersCrossCheckTests
{
    private static BpeTokenizer Reference()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TokenizerOracleTests.Folder("bpe_bytelevel"), "tokenizer.json")));
        var model = doc.RootElement.GetProperty("model");
        var vocab = model.GetProperty("vocab").EnumerateObject().Select(p => new KeyValuePair<string, int>(p.Name, p.Value.GetInt32())).ToList();
        var merges = model.GetProperty("merges").EnumerateArray()
            .Select(m => m.ValueKind == JsonValueKind.Array ? m[0].GetString() + " " + m[1].GetString() : m.GetString()!).ToList();
        var special = new Dictionary<string, int> { ["<|endoftext|>"] = 0 };
        var regex = new Regex(ModelCompiler.Runtime.Tokenizers.ByteLevelPreTokenizer.Gpt2Pattern, RegexOptions.Compiled);
        return BpeTokenizer.Create(new BpeOptions(vocab)
        {
            Merges = merges, ByteLevel = true, SpecialTokens = special, PreTokenizer = new RegexPreTokenizer(regex, special),
        });
    }

    [Fact]
    public void SameIdsAsMicrosoftMlTokenizersOnTheEvalText()
    {
        var reference = Reference();
        var ours = PystoriesProtocolTests.Pystories();
        int docs = 0;
        foreach (var doc in PystoriesProtocolTests.EvalText().Split("\n<|endoftext|>\n"))
        {
            Assert.Equal(reference.EncodeToIds(doc), ours.Encode(doc, addSpecialTokens: false));
            docs++;
        }
        Assert.True(docs > 10);
    }
}
