using ModelCompiler.Runtime.Generation;

namespace ModelCompiler.Tests.Generation;

/// <summary>The perplexity protocol's documents and windows (shared/models/README.md).</summary>
public class EvalCorpusTests
{
    [Fact]
    public void DocumentsAreSeparatedByLinesHoldingOnlyTheEosToken()
    {
        Assert.Equal(["a\nb", "c\n"], EvalCorpus.Documents("a\nb\n<|e|>\nc\n", "<|e|>"));
        Assert.Equal(["x <|e|> y"], EvalCorpus.Documents("x <|e|> y", "<|e|>"));
        Assert.Equal(["a", "b"], EvalCorpus.Documents("<|e|>\na\n<|e|>\nb\n<|e|>", "<|e|>"));
    }

    [Fact]
    public void EachDocumentIsFollowedByEos()
    {
        var tokenizer = Tokenizers.PystoriesProtocolTests.Pystories();
        var ids = EvalCorpus.Encode(tokenizer, "# Copyright\n<|endoftext|>\n# Copyright", 0, "<|endoftext|>");
        Assert.Equal([3, 348, 3891, 0, 3, 348, 3891, 0], ids);
        Assert.Equal(105327, EvalCorpus.Encode(tokenizer, Tokenizers.PystoriesProtocolTests.EvalText(), 0, "<|endoftext|>").Count);
    }

    [Theory]
    [InlineData(105327, 256, 411)] // the pystories eval split: 411 × 256 = 105216 scored tokens
    [InlineData(513, 256, 1)]      // starts i < N - W - 1, as the reference's range(0, N - 257, 256)
    [InlineData(514, 256, 2)]
    [InlineData(257, 256, 0)]
    [InlineData(10, 4, 2)]
    public void WindowsDoNotOverlapAndAreFull(int count, int window, int expected)
    {
        var windows = EvalCorpus.Windows(new int[count], window);
        Assert.Equal(expected, windows.Count);
        for (int w = 0; w < windows.Count; w++)
        {
            Assert.Equal(new TokenWindow(w * window, window), windows[w]);
            Assert.True(windows[w].Start + window + 1 <= count);
        }
    }
}
