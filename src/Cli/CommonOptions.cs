using System.CommandLine;
using ModelCompiler.Frontend;
using ModelCompiler.Runtime;

namespace ModelCompiler.Cli;

/// <summary>Options several commands share, and how they turn into a loaded model.</summary>
internal static class CommonOptions
{
    public static Argument<string> Model() => new("model") { Description = "the model: an .arch file, a Hugging Face folder (config.json picks the built-in template), a folder mc quantize wrote, or a llama.cpp .gguf file" };

    public static Option<string[]> Set() => new("--set")
    {
        Description = "override hyperparameters: --set dim=512 n_layers=2 (repeatable)",
        AllowMultipleArgumentsPerToken = true,
        Arity = ArgumentArity.OneOrMore,
    };

    public static Option<string?> Config() => new("--config")
    {
        Description = "a Hugging Face config.json supplying hyperparameters (a --weights folder's config.json is used by default)",
    };

    public static Option<int> TensorParallel()
    {
        var option = new Option<int>("--tp")
        {
            Description = "tensor parallelism: shard the model over N ranks (threads of this process on the interpreter and cpu targets); N must divide the query heads and FFN widths",
            DefaultValueFactory = _ => 1,
        };
        option.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 1) r.AddError($"--tp {r.GetValueOrDefault<int>()}: expected a number of ranks >= 1");
        });
        return option;
    }

    public static Option<bool> Json() => new("--json") { Description = "print one JSON object instead of text" };

    /// <summary><c>--dtype</c>: how --target cuda stores the linears' weights on the device (arithmetic stays fp32).</summary>
    public static Option<string> CudaDType()
    {
        var option = new Option<string>("--dtype") { Description = "with --target cuda/cuda-sim: weights on the device in fp32 (default), fp16 or bf16 (converted in registers, fp32 accumulation)", DefaultValueFactory = _ => "fp32" };
        option.AcceptOnlyFromAmong("fp32", "fp16", "bf16");
        return option;
    }

    public static void CheckCudaDType(string dtype, string target)
    {
        if (dtype != "fp32" && target is not ("cuda" or "cuda-sim"))
            throw new McException($"--dtype {dtype}: only --target cuda or cuda-sim stores weights in 16 bits (--target {target} is fp32)");
    }

    public static Dictionary<string, string> ParseSets(string[]? sets)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var s in sets ?? [])
        {
            int eq = s.IndexOf('=');
            if (eq <= 0) throw new McException($"--set {s}: expected name=value");
            result[s[..eq]] = s[(eq + 1)..];
        }
        return result;
    }

    /// <summary>The config.json to use: --config, else the --weights folder's config.json if it has one.</summary>
    public static string? ResolveConfig(string? config, string? weights)
    {
        if (config is not null)
        {
            if (!File.Exists(config)) throw new McException($"{config}: no such file");
            return config;
        }
        if (weights is not null && Directory.Exists(weights))
        {
            var candidate = Path.Combine(weights, "config.json");
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }

    public static LoadedModel Load(string model, string? config, string[]? sets)
    {
        if (Backends.Quantization.QuantizedFolder.IsQuantizedFolder(model)) return LoadQuantized(model, sets);
        if (Runtime.Gguf.GgufFile.LooksLikeGguf(model))
        {
            // Architecture and hyperparameters from its metadata; its Q8_0/Q4_0 linears onto the int8/int4 kernels.
            if (config is not null && Path.GetFullPath(config) != Path.GetFullPath(model))
                throw new McException($"--config {config}: a .gguf file brings its hyperparameters in its metadata; use --set");
            var gguf = GgufImport.Load(model, ParseSets(sets));
            Backends.Quantization.GgufQuantized.Apply(gguf.Graph, model);
            return gguf;
        }
        if (Directory.Exists(model))
        {
            if (!HuggingFaceImport.IsModelFolder(model))
                throw new McException($"{model}: a folder without config.json; give an .arch file or a Hugging Face model folder");
            if (config is not null && Path.GetFullPath(config) != Path.GetFullPath(Path.Combine(model, "config.json")))
                throw new McException($"--config {config}: a Hugging Face folder brings its own config.json; edit that or use --set");
            return HuggingFaceImport.Load(model, ParseSets(sets));
        }
        if (!File.Exists(model)) throw new McException($"{model}: no such file");
        return ModelFrontend.Load(model, config, ParseSets(sets));
    }

    /// <summary>
    /// A folder written by mc quantize: the model it was made from, elaborated again (the manifest's --set values, then
    /// these), with the manifest's linears rewritten to read the compressed tensors.
    /// </summary>
    private static LoadedModel LoadQuantized(string folder, string[]? sets)
    {
        var manifest = Backends.Quantization.QuantizedFolder.ReadManifest(folder);
        var all = new Dictionary<string, string>(manifest.Model.Sets, StringComparer.Ordinal);
        foreach (var (k, v) in ParseSets(sets)) all[k] = v;
        LoadedModel loaded;
        if (manifest.Model.Kind == "hf") loaded = HuggingFaceImport.Load(folder, all);
        else
        {
            var arch = manifest.Model.ArchPath!;
            if (!File.Exists(arch)) throw new McException($"{Path.Combine(folder, Backends.Quantization.QuantizedFolder.ManifestName)}: the model's .arch file {arch} is gone");
            loaded = ModelFrontend.Load(arch, manifest.Model.ConfigPath, all);
        }
        Backends.Quantization.QuantizedFolder.Apply(loaded.Graph, manifest, folder);
        return loaded;
    }

    /// <summary>The weights to use: --weights, else the model itself when it is a Hugging Face folder, a quantized folder or a .gguf file.</summary>
    public static string ResolveWeights(string model, string? weights)
    {
        if (weights is not null) return weights;
        if (Backends.Quantization.QuantizedFolder.IsQuantizedFolder(model)) return model;
        if (Runtime.Gguf.GgufFile.LooksLikeGguf(model)) return model;
        if (HuggingFaceImport.IsModelFolder(model)) return model;
        throw new McException($"{model}: an .arch file needs --weights (a Hugging Face folder or a .safetensors file)");
    }
}
