using System.Text;
using ModelCompiler.Backends;
using ModelCompiler.Backends.Quantization;
using ModelCompiler.Frontend;
using ModelCompiler.IR;
using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Kernels;
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
        ["quantized-folder"] = QuantizedFolderManifest,
        ["gguf"] = Gguf,
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

    /// <summary>
    /// A folder written by mc quantize: the input is its quantization.json, beside a fixed int4 quantization of the
    /// zoo's tiny LLaMA (fuzz/data/quantized-llama: config.json, model.safetensors). Does what every command does before
    /// running: read the manifest, import the model, rewrite its linears, bind the weights, and build each quantized
    /// weight the way the compiled model's loader does (every code and scale range-checked).
    /// </summary>
    private static void QuantizedFolderManifest(byte[] input)
    {
        var folder = QuantizedModelFolder.Value;
        File.WriteAllBytes(Path.Combine(folder, QuantizedFolder.ManifestName), input);
        var manifest = QuantizedFolder.ReadManifest(folder);
        if (manifest.Model.Kind != "hf") return;   // an .arch source is a path on the machine that wrote the folder
        var graph = HuggingFaceImport.Load(folder, manifest.Model.Sets).Graph;
        QuantizedFolder.Apply(graph, manifest, folder);
        using var store = WeightStore.Open(folder);
        WeightBinding.Validate(graph, store);
        foreach (var q in graph.Nodes.Where(n => n.Op == OpKind.QuantizedLinear))
        {
            var a = q.Attrs;
            int next = 3;
            float[] Read(int input) => store.ReadFloat32(q.Input(input).Attrs.Str("name"));
            var zeros = a.Bool("zeros") ? Read(next++) : null;
            var inputScale = a.Bool("input_scale") ? Read(next++) : null;
            var codes = q.Input(1).Type;
            QuantizedWeight.FromLoaded(q.Input(1).Attrs.Str("name"), a.Str("scheme"), Read(1), Read(2), zeros, inputScale,
                (int)codes[0].Size, (int)q.Input(2).Type[1].Size * (int)a.Int("group_size"), (int)a.Int("group_size"));
        }
    }

    /// <summary>
    /// A llama.cpp .gguf file, as every command takes one: the header and tensor table (bounds checks), the llama
    /// metadata into hyperparameters and an elaborated model, the Q8_0/Q4_0 linears rewritten, the weights bound, every
    /// small tensor read (dequantized, un-permuted, codes and scales), and the tokenizer built and used.
    /// </summary>
    private static void Gguf(byte[] input)
    {
        var path = Write("model.gguf", input);
        using (var weights = Runtime.Gguf.GgufWeights.Open(path))
        {
            foreach (var t in weights.Tensors)
            {
                if (t.ElementCount > 1 << 16) continue;   // bounded work per input
                weights.ReadFloat32(t.Name);
                if (!t.DType.IsFloat()) weights.ReadInt64(t.Name);
            }
            if (weights.File.Has("tokenizer.ggml.model")) Exercise(GgufTokenizer.Load(weights.File));
            if (weights.File.Tensors.Count == 0) return;   // a vocabulary-only file: no model to import
        }
        var graph = GgufImport.Load(path, new Dictionary<string, string>()).Graph;
        GgufQuantized.Apply(graph, path);
        using var store = WeightStore.Open(path);
        WeightBinding.Validate(graph, store);
    }

    private static readonly Lazy<string> QuantizedModelFolder = new(() =>
    {
        // fuzz/run.sh sets MC_FUZZ_DATA; the test project copies fuzz/data beside itself as fuzz-data.
        var data = Environment.GetEnvironmentVariable("MC_FUZZ_DATA") is { Length: > 0 } set ? set
            : Directory.Exists(Path.Combine(AppContext.BaseDirectory, "fuzz-data")) ? Path.Combine(AppContext.BaseDirectory, "fuzz-data")
            : Path.Combine(AppContext.BaseDirectory, "..", "..", "data");
        var folder = Path.Combine(Scratch, "quantized");
        Directory.CreateDirectory(folder);
        foreach (var f in (string[])["config.json", WeightStore.SingleFileName])
            File.Copy(Path.Combine(data, "quantized-llama", f), Path.Combine(folder, f), overwrite: true);
        return folder;
    });

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
