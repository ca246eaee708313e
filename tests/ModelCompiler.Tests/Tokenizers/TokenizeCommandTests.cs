using System.Text.Json;
using ModelCompiler.Tests.Cli;

namespace ModelCompiler.Tests.Tokenizers;

/// <summary><c>mc tokenize</c> through McApp.Run.</summary>
public class TokenizeCommandTests
{
    [Fact]
    public void JsonHasExactlyIdsTokensAndDecoded()
    {
        var r = CliRunner.Run("tokenize", TokenizerOracleTests.Folder("bpe_bytelevel"), "--text", "def fibonacci(n):\n", "--json");
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Equal("", r.Err);
        Assert.Equal("{\"ids\": [477, 289, 1453, 270, 1243, 511, 8, 78, 310, 199], \"tokens\": [\"def\", \"Ġf\", \"ib\", \"on\", \"ac\", \"ci\", \"(\", \"n\", \"):\", \"Ċ\"], \"decoded\": \"def fibonacci(n):\\n\"}",
            r.Out.TrimEnd('\n'));
        using var doc = JsonDocument.Parse(r.Out);
        Assert.Equal(["ids", "tokens", "decoded"], doc.RootElement.EnumerateObject().Select(p => p.Name).ToArray());
    }

    [Fact]
    public void DecodedSkipsSpecialTokens()
    {
        var r = CliRunner.Run("tokenize", Path.Combine(TokenizerOracleTests.Folder("wordpiece_bert"), "tokenizer.json"), "--text", "Hello, world!", "--json");
        Assert.True(r.ExitCode == 0, r.Err);
        using var doc = JsonDocument.Parse(r.Out);
        Assert.Equal([2, 1704, 1339, 16, 65, 1084, 1029, 1023, 5, 3], doc.RootElement.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()));
        Assert.Equal("[CLS]", doc.RootElement.GetProperty("tokens")[0].GetString());
        Assert.Equal("hello, world!", doc.RootElement.GetProperty("decoded").GetString());

        var plain = CliRunner.Run("tokenize", TokenizerOracleTests.Folder("wordpiece_bert"), "--text", "Hello", "--json", "--no-special");
        using var doc2 = JsonDocument.Parse(plain.Out);
        Assert.DoesNotContain(2, doc2.RootElement.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()));
    }

    [Fact]
    public void SentencePieceModelFile()
    {
        var r = CliRunner.Run("tokenize", Path.Combine(TokenizerOracleTests.Folder("sentencepiece_bpe"), "tokenizer.model"), "--text", "naïve café", "--json");
        Assert.True(r.ExitCode == 0, r.Err);
        using var doc = JsonDocument.Parse(r.Out);
        Assert.Equal("naïve café", doc.RootElement.GetProperty("decoded").GetString());
        Assert.Contains("<0xC3>", doc.RootElement.GetProperty("tokens").EnumerateArray().Select(x => x.GetString()));
    }

    [Fact]
    public void TableListsTokensAndIds()
    {
        var r = CliRunner.Run("tokenize", TokenizerOracleTests.Folder("unigram_t5"), "--text", "Hello, world!");
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Contains("11 tokens", r.Out);
        Assert.Contains("\"▁\"", r.Out);
        Assert.Contains("ids: [3, 114, 200, 350, 7, 3, 85, 46, 99, 15, 699]", r.Out);
        Assert.Contains("decoded: \"Hello, world!\"", r.Out);
    }

    [Fact]
    public void HelpWorks()
    {
        var r = CliRunner.Run("tokenize", "--help");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("Usage:", r.Out);
        Assert.Contains("--text", r.Out);
        Assert.Contains("--json", r.Out);
        Assert.Contains("tokenize", CliRunner.Run("--help").Out);
    }

    [Fact]
    public void ErrorsAreOneLineWithExitCode1()
    {
        var missing = CliRunner.Run("tokenize", "/no/such/tokenizer", "--text", "x");
        Assert.Equal(1, missing.ExitCode);
        Assert.Equal("error: /no/such/tokenizer: no such file or folder", missing.Err.TrimEnd('\n'));

        var file = CliRunner.TempFile("tokenizer.json");
        File.WriteAllText(file, "{\"model\": {\"type\": \"Magic\"}}");
        var bad = CliRunner.Run("tokenize", file, "--text", "x");
        File.Delete(file);
        Assert.Equal(1, bad.ExitCode);
        Assert.Single(bad.Err.TrimEnd('\n').Split('\n'));
        Assert.Contains("model.type: unknown model type 'Magic'", bad.Err);
        Assert.Equal("", bad.Out);
    }

    [Fact]
    public void MissingTextIsAUsageError()
    {
        var r = CliRunner.Run("tokenize", TokenizerOracleTests.Folder("bpe_bytelevel"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--text", r.Err);
    }
}
