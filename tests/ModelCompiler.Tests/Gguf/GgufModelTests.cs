using ModelCompiler.Backends.Quantization;
using ModelCompiler.Frontend;
using ModelCompiler.IR;
using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Gguf;
using ModelCompiler.Runtime.Tokenizers;
using ModelCompiler.Tests.Cli;

namespace ModelCompiler.Tests.Gguf;

/// <summary>
/// llama.cpp model files as models. Data/gguf was written by llama.cpp's own gguf-py and llama-quantize from the zoo's
/// tiny LLaMA oracle (Data/gguf/make_gguf.py), and the quantized files' fp32 references are gguf-py's own dequantization
/// of every tensor: nothing here is checked against numbers our code produced.
/// </summary>
public class GgufModelTests
{
    private static string Data(string name) => Path.Combine(AppContext.BaseDirectory, "Data", "gguf", name);

    private static string Llama => CliRunner.Oracle("llama");

    private static string Inputs => Path.Combine(Llama, "reference.safetensors");

    private static float[] Logits(string file)
    {
        using var f = SafetensorsFile.Open(file);
        return f.ReadFloat32("logits");
    }

    private static double RelativeError(float[] reference, float[] actual)
    {
        Assert.Equal(reference.Length, actual.Length);
        return reference.Zip(actual).Max(p => Math.Abs(p.First - p.Second)) / reference.Max(Math.Abs);
    }

    /// <summary>mc eval's logits for <paramref name="args"/> (the model and its options).</summary>
    private static float[] Eval(params string[] args)
    {
        var outFile = CliRunner.TempFile("out.safetensors");
        try
        {
            var r = CliRunner.Run(["eval", .. args, "--inputs", Inputs, "--out", outFile]);
            Assert.True(r.ExitCode == 0, r.Err);
            return Logits(outFile);
        }
        finally
        {
            File.Delete(outFile);
        }
    }

    [Theory]
    [InlineData("llama-f32.gguf", 1e-4)]
    [InlineData("llama-f16.gguf", 1e-2)]   // weights rounded to fp16 by the writer
    public void FloatFilesGiveTheOraclesLogits(string file, double tolerance)
    {
        double err = RelativeError(Logits(Inputs), Eval(Data(file)));
        Assert.True(err < tolerance, $"{file}: relative logit error {err} against the Hugging Face oracle");
    }

    [Theory]
    [InlineData("q8_0", "interpreter", 0.03)]
    [InlineData("q8_0", "cpu", 0.03)]
    [InlineData("q4_0", "interpreter", 0.35)]
    [InlineData("q4_0", "cpu", 0.35)]
    public void QuantizedFilesMatchGgufPysDequantization(string type, string target, double fp32Tolerance)
    {
        // The same model in fp32 with gguf-py's dequantized weights: our int8/int4 kernels on the blocks must agree.
        var reference = Eval(Llama, "--weights", Data($"llama-{type}.dequant.safetensors"));
        var quantized = Eval(Data($"llama-{type}.gguf"), "--target", target);
        double err = RelativeError(reference, quantized);
        Assert.True(err < 1e-4, $"{type} on {target}: relative error {err} against the dequantize-then-fp32 reference");
        // And the quantization itself costs what it should against the unquantized oracle (measured 0.015 and 0.23).
        double lossy = RelativeError(Logits(Inputs), quantized);
        Assert.True(lossy is > 1e-4 && lossy < fp32Tolerance, $"{type}: relative error {lossy} against fp32");
    }

    [Theory]
    [InlineData("llama-q8_0.gguf", "int8")]
    [InlineData("llama-q4_0.gguf", "int4")]
    public void QuantizedLinearsRunOnTheKernelsWithGroup32(string file, string scheme)
    {
        var path = Data(file);
        var graph = GgufImport.Load(path, new Dictionary<string, string>()).Graph;
        GgufQuantized.Apply(graph, path);
        var quantized = graph.Nodes.Where(n => n.Op == OpKind.QuantizedLinear).ToList();
        Assert.Equal(15, quantized.Count);   // 2 layers × 7 linears + the LM head
        Assert.All(quantized, q => Assert.Equal(scheme, q.Attrs.Str("scheme")));
        Assert.All(quantized, q => Assert.Equal(32L, q.Attrs.Int("group_size")));
        Assert.DoesNotContain(graph.Nodes, n => n.Op == OpKind.Linear);
    }

    [Fact]
    public void Q4BlocksAreTheKernelsInt4LayoutWithZeroPoint8()
    {
        using var store = WeightStore.Open(Data("llama-q4_0.gguf"));
        const string w = "model.layers.1.mlp.down_proj.weight";
        var codes = store.ReadFloat32(w + ".codes");
        var scales = store.ReadFloat32(w + ".scales");
        var zeros = store.ReadFloat32(w + ".zeros");
        var values = store.ReadFloat32(w);
        Assert.Equal([64, 80], store.Get(w + ".codes").Shape);
        Assert.All(zeros, z => Assert.Equal(8f, z));
        var weight = ModelCompiler.Runtime.Kernels.QuantizedWeight.FromLoaded(w, "int4", codes, scales, zeros, null, 64, 160, 32);
        using var dequantized = SafetensorsFile.Open(Data("llama-q4_0.dequant.safetensors"));
        var reference = dequantized.ReadFloat32(w);
        for (int r = 0; r < 64; r++)
            for (int c = 0; c < 160; c++)
            {
                Assert.Equal(reference[r * 160 + c], weight[r, c]);
                Assert.Equal(reference[r * 160 + c], values[r * 160 + c]);
            }
    }

    [Fact]
    public void QkRowsAreUnpermuted()
    {
        // llama.cpp interleaves each head's two RoPE halves; reading the f32 file must give the Hugging Face rows back.
        using var gguf = WeightStore.Open(Data("llama-f32.gguf"));
        using var hf = WeightStore.Open(Llama);
        foreach (var name in new[] { "model.layers.0.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight", "model.layers.0.self_attn.v_proj.weight" })
            Assert.Equal(hf.ReadFloat32(name), gguf.ReadFloat32(name));
    }

    [Fact]
    public void HyperparametersComeFromTheMetadata()
    {
        using var file = GgufFile.Open(Data("llama-q8_0.gguf"));
        var config = GgufLlama.Config(file);
        Assert.Equal(64, (long)config["hidden_size"]!);
        Assert.Equal(2, (long)config["num_hidden_layers"]!);
        Assert.Equal(4, (long)config["num_attention_heads"]!);
        Assert.Equal(2, (long)config["num_key_value_heads"]!);
        Assert.Equal(160, (long)config["intermediate_size"]!);
        Assert.Equal(256, (long)config["vocab_size"]!);
        Assert.False((bool)config["tie_word_embeddings"]!);
    }

    [Fact]
    public void TokenizerFromMetadataEncodesLikeTheModelsTokenizerJson()
    {
        var reference = TokenizerLoader.Load(CliRunner.Example(Path.Combine("pystories", "tokenizer.json")));
        var gguf = TokenizerLoader.Load(Data("tokenizer-gpt2.gguf"));
        string[] texts =
        [
            "Once upon a time, there was a little girl named Lily.",
            "  two spaces, tabs\tand\nnewlines\n\n",
            "numbers 12345 and punctuation!?... \"quotes\" 'n' stuff",
            "déjà vu, naïve café — 日本語 😀",
            "<|endoftext|>The end.",
        ];
        foreach (var text in texts)
        {
            var ids = reference.Encode(text, addSpecialTokens: false);
            Assert.Equal(ids, gguf.Encode(text, addSpecialTokens: false));
            Assert.Equal(reference.Decode(ids), gguf.Decode(ids));
        }
        Assert.Equal(reference.TokenToId("<|endoftext|>"), gguf.SpecialIds.Eos);
    }

    [Fact]
    public void LlamaVocabularyEncodesLikeSentencePiece()
    {
        // tokenizer-llama.gguf carries the pieces of tests/tokenizers/sentencepiece_bpe; expected.json is the real
        // sentencepiece library's output. A GGUF vocabulary has no normalizer spec, so (as in llama.cpp) whitespace runs
        // are kept and digits are not split: only the cases those settings do not touch are compared.
        var gguf = TokenizerLoader.Load(Data("tokenizer-llama.gguf"));
        var expected = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "tokenizers", "sentencepiece_bpe", "expected.json")));
        int compared = 0;
        foreach (var c in expected.RootElement.GetProperty("cases").EnumerateArray())
        {
            var text = c.GetProperty("text").GetString()!;
            if (text.Length == 0 || System.Text.RegularExpressions.Regex.IsMatch(text, @"\s\s|[\t\r\n]|\d\d|^\s|\s$")) continue;
            var ids = c.GetProperty("ids").EnumerateArray().Select(i => i.GetInt32()).ToList();
            Assert.Equal(ids, gguf.Encode(text, addSpecialTokens: false));
            Assert.Equal(c.GetProperty("decoded").GetString(), gguf.Decode(ids));
            compared++;
        }
        Assert.True(compared >= 8, $"only {compared} cases compared");
        Assert.Equal(2, gguf.SpecialIds.Eos);
    }

    [Fact]
    public void RunGeneratesFromAGgufFile()
    {
        var r = CliRunner.Run("run", Data("llama-q8_0.gguf"), "--prompt", "<t5><t7>", "--max-tokens", "4", "--temperature", "0");
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.StartsWith("<t5><t7>", r.Out);
    }

    [Fact]
    public void PerplexityScoresAGgufFile()
    {
        var text = CliRunner.TempFile("text.txt");
        try
        {
            // tiny-q4_0.gguf: a one-layer model with an 8-piece SentencePiece vocabulary (▁a, b, ab, ▁, ...).
            File.WriteAllText(text, string.Concat(Enumerable.Repeat("a b ab ba ", 40)));
            var r = CliRunner.Run("perplexity", Data("tiny-q4_0.gguf"), "--text", text, "--window", "16", "--json");
            Assert.True(r.ExitCode == 0, r.Err);
            using var json = System.Text.Json.JsonDocument.Parse(r.Out);
            double perplexity = json.RootElement.GetProperty("perplexity").GetDouble();
            Assert.True(double.IsFinite(perplexity) && perplexity > 1, $"perplexity {perplexity}");
            Assert.True(json.RootElement.GetProperty("tokens").GetInt32() >= 15);
        }
        finally
        {
            File.Delete(text);
        }
    }

    [Fact]
    public void BenchRunsTheFilesQuantizedLinears()
    {
        var r = CliRunner.Run("bench", Data("llama-q4_0.gguf"), "-p", "8", "-n", "2", "-r", "1", "--json");
        Assert.True(r.ExitCode == 0, r.Err);
        using var json = System.Text.Json.JsonDocument.Parse(r.Out);
        var kernels = json.RootElement.GetProperty("kernels").EnumerateArray().Select(k => k.GetProperty("kernel").GetString()).ToList();
        Assert.Contains("quantized_linear", kernels);
        Assert.DoesNotContain("linear", kernels);
    }

    [Fact]
    public void HostileFilesGiveOneLineErrorsNamingTheFile()
    {
        var whole = File.ReadAllBytes(Data("llama-q4_0.gguf"));
        var path = CliRunner.TempFile("bad.gguf");
        try
        {
            foreach (var (bytes, expected) in new (byte[], string)[]
            {
                (whole[..100], "metadata count 22 cannot fit"),
                (whole[..(whole.Length - 1)], "outside the file's data region"),
                ([.. "GGUF"u8, 3, 0, 0, 0, .. BitConverter.GetBytes(ulong.MaxValue), .. new byte[12]], "tensor count"),
                ([.. "GGML"u8, .. whole[4..]], "not a GGUF file"),
            })
            {
                File.WriteAllBytes(path, bytes);
                var r = CliRunner.Run("eval", path, "--inputs", Inputs, "--out", CliRunner.TempFile("x.safetensors"));
                Assert.Equal(1, r.ExitCode);
                var line = Assert.Single(r.Err.TrimEnd().Split('\n'));
                Assert.Contains(path, line);
                Assert.Contains(expected, line);
            }
        }
        finally
        {
            File.Delete(path);
        }
    }
}
