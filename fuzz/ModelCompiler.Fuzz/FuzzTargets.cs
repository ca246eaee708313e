using System.Text;
using ModelCompiler.Frontend;
using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Tokenizers;
using ModelCompiler.Runtime.Tokenizers.SentencePiece;

namespace ModelCompiler.Fuzz;

/// <summary>
/// The readers that take files from strangers. Each target feeds one input through a reader and uses the
/// result a little. <see cref="McException"/> (the documented user error) is an expected outcome; the caller
/// treats any other exception as a crash.
/// </summary>
public static class FuzzTargets
{
    public static readonly IReadOnlyDictionary<string, Action<byte[]>> All = new Dictionary<string, Action<byte[]>>
    {
        ["dsl"] = Dsl,
        ["safetensors"] = Safetensors,
        ["config"] = Config,
        ["tokenizer-json"] = TokenizerJson,
        ["sentencepiece"] = SentencePiece,
    };

    // Readers take paths (safetensors memory-maps its file), so inputs go through one scratch file per process.
    private static readonly string Scratch = Directory.CreateTempSubdirectory($"mc-fuzz-{Environment.ProcessId}-").FullName;

    private static readonly string[] Probes = ["Hello, world!", "  déjà vu 123\n\t<s>", "日本語 😀 a", ""];

    /// <summary>The DSL: parse, check, bind default hyperparameters, elaborate. Imports resolve to the built-in library.</summary>
    private static void Dsl(byte[] input)
    {
        var files = new OverlayArchFiles(BuiltinArchFiles.Scheme + "fuzz.arch", Encoding.UTF8.GetString(input));
        ModelFrontend.Load(files.Root, null, new Dictionary<string, string>(), files);
    }

    /// <summary>safetensors: open (header validation), then read every tensor the way the weight binder does.</summary>
    private static void Safetensors(byte[] input)
    {
        var path = Write("model.safetensors", input);
        using var file = SafetensorsFile.Open(path);
        foreach (var t in file.Tensors)
        {
            if (t.ElementCount > 1 << 16) continue; // bounded work per input; large reads are covered by the header checks
            switch (t.DType)
            {
                case DType.F32 or DType.F16 or DType.BF16 or DType.F64: file.ReadFloat32(t.Name); file.ReadFloat64(t.Name); break;
                case DType.I64 or DType.I32 or DType.I8 or DType.U8 or DType.Bool: file.ReadInt64(t.Name); break;
            }
            file.GetBytes(t.Name);
        }
        _ = file.Metadata.Count;
    }

    /// <summary>config.json import: model_type picks a template, the config binds its hyperparameters, the model elaborates.</summary>
    private static void Config(byte[] input)
    {
        var folder = Path.Combine(Scratch, "hf");
        Directory.CreateDirectory(folder);
        File.WriteAllBytes(Path.Combine(folder, "config.json"), input);
        HuggingFaceImport.ToArchText(folder, new Dictionary<string, string>());
    }

    private static void TokenizerJson(byte[] input) => Exercise(HfTokenizerJson.Parse(input, "tokenizer.json"));

    private static void SentencePiece(byte[] input) => Exercise(SentencePieceTokenizer.Load(Write("tokenizer.model", input)));

    private static void Exercise(ITokenizer tokenizer)
    {
        foreach (var text in Probes)
        {
            var ids = tokenizer.Encode(text);
            tokenizer.Decode(ids);
            tokenizer.Decode(ids, skipSpecialTokens: false);
            tokenizer.Tokens(ids);
        }
        tokenizer.Decode([0, 1, 2, 3, 255, 256, 1000, -1, int.MaxValue]);
        tokenizer.IdToToken(-1);
        tokenizer.IdToToken(0);
        tokenizer.TokenToId("a");
    }

    private static string Write(string name, byte[] input)
    {
        var path = Path.Combine(Scratch, name);
        File.WriteAllBytes(path, input);
        return path;
    }

    /// <summary>The fuzz input as one .arch file beside the built-in library (so `import "std/..."` works).</summary>
    private sealed class OverlayArchFiles(string root, string text) : IArchFiles
    {
        public string Root => root;
        public bool Exists(string path) => path == root || BuiltinArchFiles.Instance.Exists(path);
        public string Read(string path) => path == root ? text : BuiltinArchFiles.Instance.Read(path);
        public string Resolve(string from, string relative) => BuiltinArchFiles.Instance.Resolve(from, relative);
    }
}
