using ModelCompiler.Runtime.Generation;
using ModelCompiler.Runtime.Tokenizers;
using ModelCompiler.Tests.Tokenizers;

namespace ModelCompiler.Tests.Generation;

/// <summary>Incremental detokenization and stop strings: what is streamed piece by piece equals the whole.</summary>
public class StreamingTextTests
{
    private static (List<string> Pieces, string Flushed) Stream(ITokenizer tokenizer, IReadOnlyList<int> prompt, IReadOnlyList<int> generated)
    {
        var detokenizer = new IncrementalDetokenizer(tokenizer, prompt);
        var pieces = generated.Select(detokenizer.Push).ToList();
        return (pieces, detokenizer.Flush());
    }

    [Theory]
    [InlineData("bpe_bytelevel")]
    [InlineData("sentencepiece_bpe")]
    [InlineData("sentencepiece_unigram")]
    public void StreamedPiecesConcatenateToTheDecodedCompletion(string kind)
    {
        var tokenizer = TokenizerOracleTests.Get(kind);
        var prompt = tokenizer.Encode("def greet(name):", addSpecialTokens: false);
        var generated = tokenizer.Encode(" return f\"héllo {name} — 日本語 🙂\"\n\tprint('ok')", addSpecialTokens: false);
        var (pieces, flushed) = Stream(tokenizer, prompt, generated);
        var whole = tokenizer.Decode(prompt.Concat(generated));
        var promptText = tokenizer.Decode(prompt);
        Assert.StartsWith(promptText, whole);
        Assert.Equal(whole[promptText.Length..], string.Concat(pieces) + flushed);
        Assert.DoesNotContain(pieces, p => p.Contains('\uFFFD'));
    }

    [Fact]
    public void BytesOfOneCharacterAreHeldBackUntilItIsComplete()
    {
        // The byte-level pystories vocabulary (trained on Python sources) spells an emoji with byte tokens.
        var tokenizer = TokenizerOracleTests.Get("bpe_bytelevel");
        var generated = tokenizer.Encode("🙂", addSpecialTokens: false);
        Assert.True(generated.Count > 1, "the emoji is one token in this vocabulary; the test needs one split into bytes");
        var (pieces, flushed) = Stream(tokenizer, tokenizer.Encode("x = ", addSpecialTokens: false), generated);
        Assert.All(pieces.SkipLast(1), p => Assert.Equal("", p));
        Assert.Equal("🙂", pieces[^1]);
        Assert.Equal("", flushed);
    }

    [Fact]
    public void AnIncompleteCharacterAtTheEndComesOutAsTheReplacementCharacter()
    {
        var tokenizer = TokenizerOracleTests.Get("bpe_bytelevel");
        var bytes = tokenizer.Encode("🙂", addSpecialTokens: false);
        var (pieces, flushed) = Stream(tokenizer, tokenizer.Encode("x", addSpecialTokens: false), bytes.Take(1).ToList());
        Assert.Equal("", pieces.Single());
        Assert.Equal(tokenizer.Decode(bytes.Take(1)), flushed);
        Assert.Contains('\uFFFD', flushed);
    }

    [Fact]
    public void StopStringsCutTheTextAndHoldBackWhatMayStartOne()
    {
        var stops = new StopStrings(["END", "\n\n"]);
        Assert.Equal("abc", stops.Push("abc"));
        Assert.Equal("x", stops.Push("xE"));      // "E" may start "END"
        Assert.Equal("", stops.Push("N"));        // "EN" too
        Assert.Equal("ENx", stops.Push("x"));     // it did not
        Assert.Equal("line", stops.Push("line\n")); // "\n" may start "\n\n"
        Assert.Equal("", stops.Push("\nmore"));
        Assert.True(stops.Stopped);
        Assert.Equal("", stops.Push("anything"));
        Assert.Equal("", stops.Flush());
    }

    [Fact]
    public void TheEarliestStopStringWinsAndUnfinishedPrefixesAreFlushed()
    {
        var stops = new StopStrings(["cd", "ab"]);
        Assert.Equal("x", stops.Push("xabcd"));
        Assert.True(stops.Stopped);
        var open = new StopStrings(["STOP"]);
        Assert.Equal("tail", open.Push("tailST"));
        Assert.Equal("ST", open.Flush());
        Assert.False(open.Stopped);
    }
}
