using System.Text;
using BenchmarkDotNet.Attributes;
using ModelCompiler.Runtime.Generation;
using ModelCompiler.Runtime.Tokenizers;

namespace ModelCompiler.Benchmarks;

/// <summary>
/// Encoding examples/pystories/eval.txt with its byte-level BPE tokenizer by the perplexity protocol (each
/// document alone, EOS after each): 105327 ids. The MB/s column is the text's UTF-8 size over the median time.
/// </summary>
public class TokenizerBenchmarks
{
    /// <summary>examples/pystories, found from the working directory or the binary's folder upwards.</summary>
    public static string Folder { get; } = FindUp(Path.Combine("examples", "pystories"));

    /// <summary>The UTF-8 bytes of eval.txt (the MB/s column's numerator).</summary>
    public static long TextBytes { get; } = Encoding.UTF8.GetByteCount(File.ReadAllText(Path.Combine(Folder, "eval.txt")));

    ITokenizer _tokenizer = null!;
    string _text = "";

    [GlobalSetup]
    public void Setup()
    {
        _tokenizer = TokenizerLoader.Load(Folder);
        _text = File.ReadAllText(Path.Combine(Folder, "eval.txt"));
    }

    [Benchmark]
    public int EncodePystoriesEvalText() => EvalCorpus.Encode(_tokenizer, _text, 0, "<|endoftext|>").Count;

    static string FindUp(string relative)
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                if (Directory.Exists(Path.Combine(dir.FullName, relative))) return Path.Combine(dir.FullName, relative);
        throw new DirectoryNotFoundException($"{relative} not found above {Directory.GetCurrentDirectory()} or {AppContext.BaseDirectory}");
    }
}
