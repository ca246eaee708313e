using System.Diagnostics;
using System.Text;
using ModelCompiler.Runtime.Tokenizers;
using Xunit.Abstractions;

namespace ModelCompiler.Tests.Tokenizers;

/// <summary>The pystories tokenizer (tests/tokenizers/bpe_bytelevel) against the team's pystories model:
/// its oracle's prompt ids, and the eval protocol's token count.</summary>
public class PystoriesProtocolTests(ITestOutputHelper output)
{
    public static ITokenizer Pystories() => TokenizerOracleTests.Get("bpe_bytelevel");

    public static string EvalText() => File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Data", "tokenizers", "pystories_eval.txt"));

    /// <summary>The protocol: split on "\n&lt;|endoftext|&gt;\n", encode each document alone (no special
    /// tokens added), append id 0 (&lt;|endoftext|&gt;) after each.</summary>
    public static List<int> EncodeEval(ITokenizer tokenizer, string text)
    {
        var ids = new List<int>();
        foreach (var doc in text.Split("\n<|endoftext|>\n"))
        {
            ids.AddRange(tokenizer.Encode(doc, addSpecialTokens: false));
            ids.Add(0);
        }
        return ids;
    }

    [Theory]
    [InlineData("def fibonacci(n):\n", new[] { 477, 289, 1453, 270, 1243, 511, 8, 78, 310, 199 })]
    [InlineData("import os\nimport sys\n\n\nclass ", new[] { 791, 736, 199, 791, 813, 583, 199, 501, 221 })]
    [InlineData("    for i in range(len(", new[] { 259, 380, 274, 311, 1699, 8, 840, 8 })]
    [InlineData("# Copyright", new[] { 3, 348, 3891 })]
    public void ReproducesTheOraclePromptIds(string prompt, int[] ids)
    {
        Assert.Equal(ids, Pystories().Encode(prompt));
        Assert.Equal(ids, Pystories().Encode(prompt, addSpecialTokens: false));
        Assert.Equal(prompt, Pystories().Decode(ids));
    }

    [Fact]
    public void SpecialIdsComeFromTheTokenizer()
    {
        var t = Pystories();
        Assert.Equal(4096, t.VocabSize);
        Assert.Equal(0, t.SpecialTokens["<|endoftext|>"]);
        Assert.True(t.IsSpecial(0));
        Assert.False(t.IsSpecial(477));
        Assert.Equal("<|endoftext|>", t.IdToToken(0));
        Assert.Equal(["def", "Ġf"], t.Tokens([477, 289]));
        Assert.Equal("<|endoftext|>def", t.Decode([0, 477], skipSpecialTokens: false));
    }

    [Fact]
    public void EvalProtocolGives105327Ids()
    {
        var text = EvalText();
        var tokenizer = Pystories();
        EncodeEval(tokenizer, text.Substring(0, 20_000)); // warm up (JIT, regex)
        var watch = Stopwatch.StartNew();
        var ids = EncodeEval(tokenizer, text);
        watch.Stop();
        Assert.Equal(105327, ids.Count);
        double mb = Encoding.UTF8.GetByteCount(text) / 1e6;
        output.WriteLine($"eval.txt: {mb:F3} MB, {ids.Count} ids in {watch.Elapsed.TotalMilliseconds:F0} ms = {mb / watch.Elapsed.TotalSeconds:F2} MB/s");

        // Decoding the ids of each document gives the document back (byte-level BPE is lossless).
        var docs = text.Split("\n<|endoftext|>\n");
        Assert.Equal(docs.Length, ids.Count(i => i == 0));
        int start = 0, d = 0;
        for (int i = 0; i < ids.Count; i++)
        {
            if (ids[i] != 0) continue;
            Assert.Equal(docs[d++], tokenizer.Decode(ids.GetRange(start, i - start)));
            start = i + 1;
        }
    }
}
