using System.Text.Json;
using System.Text.Json.Nodes;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;

namespace ModelCompiler.Backends.Quantization;

/// <summary>Where a quantized folder's model definition comes from: a Hugging Face config.json copied into it, or an .arch file.</summary>
public sealed record QuantizedModelSource(string Kind, string? ArchPath, string? ConfigPath, IReadOnlyDictionary<string, string> Sets);

/// <summary>A quantized folder's manifest: the request, the model source, and one entry per compressed weight.</summary>
public sealed record QuantizedManifest(QuantizeRequest Request, QuantizedModelSource Model, IReadOnlyList<QuantizedLinearEntry> Linears,
    IReadOnlyList<string> Replaced, JsonObject? Calibration);

/// <summary>
/// <c>mc quantize -o folder/</c>'s output: model.safetensors (every tensor the quantized graph reads: codes, scales,
/// zero points, pruned or smoothed float tensors, and the untouched originals), quantization.json (the manifest) and,
/// for a Hugging Face model, its config, tokenizer and generation files. Loading re-elaborates the model and rewrites
/// the listed linears from the manifest, so nothing is recomputed.
/// </summary>
public static class QuantizedFolder
{
    public const string ManifestName = "quantization.json";
    public const string Format = "mc-quantized/1";
    private static readonly string[] CopiedFiles = ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json", "tokenizer.model"];

    public static bool IsQuantizedFolder(string path) => Directory.Exists(path) && File.Exists(Path.Combine(path, ManifestName));

    /// <summary>Writes the folder; <paramref name="graph"/> is the rewritten graph (its weights are what is stored).</summary>
    public static long Write(string folder, Graph graph, QuantizationContext context, QuantizeRequest request, WeightStore original,
        QuantizedModelSource model, string? hfFolder, JsonObject? calibration)
    {
        if (File.Exists(folder)) throw new McException($"-o {folder}: is a file, not a folder");
        Directory.CreateDirectory(folder);
        var tensors = new List<TensorData>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var w in graph.Weights)
        {
            var name = w.Attrs.Str("name");
            if (!seen.Add(name)) continue;
            if (context.Weights.Written.TryGetValue(name, out var written)) tensors.Add(written);
            else
            {
                var info = original.Get(name);
                tensors.Add(info.DType.IsFloat()
                    ? TensorData.FromFloat32(name, info.Shape.ToArray(), original.ReadFloat32(name))
                    : TensorData.FromInt64(name, info.Shape.ToArray(), original.ReadInt64(name)));
            }
        }
        var weightsPath = Path.Combine(folder, WeightStore.SingleFileName);
        SafetensorsWriter.Write(weightsPath, tensors, new Dictionary<string, string> { ["format"] = "pt", ["mc_quantization"] = request.Scheme ?? "none" });
        if (hfFolder is not null)
            foreach (var f in CopiedFiles)
                if (File.Exists(Path.Combine(hfFolder, f)) && Path.GetFullPath(hfFolder) != Path.GetFullPath(folder))
                    File.WriteAllBytes(Path.Combine(folder, f), File.ReadAllBytes(Path.Combine(hfFolder, f)));  // not File.Copy: keeps a read-only source's mode
        var manifest = new JsonObject
        {
            ["format"] = Format,
            ["scheme"] = request.Scheme,
            ["group_size"] = request.GroupSize,
            ["smooth_alpha"] = request.SmoothAlpha,
            ["prune"] = request.Prune?.ToString(),
            ["calibration"] = calibration,
            ["model"] = new JsonObject
            {
                ["kind"] = model.Kind,
                ["arch"] = model.ArchPath,
                ["config"] = model.ConfigPath,
                ["sets"] = new JsonObject(model.Sets.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value)))),
            },
            ["linears"] = new JsonArray(context.Entries.Select(e => (JsonNode)new JsonObject
            {
                ["weight"] = e.Weight, ["scheme"] = e.Scheme, ["group_size"] = e.GroupSize, ["codes"] = e.Codes, ["scales"] = e.Scales,
                ["zeros"] = e.Zeros, ["input_scale"] = e.InputScale,
            }).ToArray()),
            ["replaced"] = new JsonArray(context.Weights.Written.Keys.Where(n => original.Contains(n) && seen.Contains(n)).Order(StringComparer.Ordinal).Select(n => (JsonNode)JsonValue.Create(n)).ToArray()),
            ["bytes"] = tensors.Sum(t => (long)t.Data.Length),
        };
        File.WriteAllText(Path.Combine(folder, ManifestName), manifest.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        return new FileInfo(weightsPath).Length;
    }

    /// <summary>Reads and checks the manifest; every problem is a one-line error naming the file.</summary>
    public static QuantizedManifest ReadManifest(string folder)
    {
        var path = Path.Combine(folder, ManifestName);
        // Reasons may echo text from the file (names, a JSON parser's excerpt): kept to one short line.
        McException Bad(string why) => new($"{path}: {UserText.Quote(why)[1..^1]} (a corrupt quantized folder? re-run mc quantize)");
        JsonObject root;
        try
        {
            if (new FileInfo(path).Length > 64 << 20) throw Bad("larger than 64 MiB");
            var text = File.ReadAllText(path);
            root = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { MaxDepth = 16, AllowDuplicateProperties = false }) as JsonObject ?? throw Bad("not a JSON object");
            // Escapes that decode to no string (a lone surrogate) would fail deep inside a lookup: reject them here.
            JsonStrings.RequireDecodable(System.Text.Encoding.UTF8.GetBytes(text), path, maxDepth: 16);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)   // the latter: a name escaping a lone surrogate
        {
            throw Bad($"malformed JSON: {UserText.Detail(e.Message)}");
        }
        catch (IOException e)
        {
            throw Bad($"cannot read: {e.Message}");
        }
        try
        {
            if (root["format"]?.GetValue<string>() != Format) throw Bad($"format is not \"{Format}\"");
            var prune = root["prune"]?.GetValue<string>();
            var request = new QuantizeRequest(root["scheme"]?.GetValue<string>(), root["group_size"]?.GetValue<int>(),
                root["smooth_alpha"]?.GetValue<double>() ?? 0.5, prune is null ? null : PruningSpec.Parse(prune));
            request.Validate();
            var m = root["model"] as JsonObject ?? throw Bad("no \"model\" object");
            var kind = m["kind"]?.GetValue<string>();
            if (kind is not ("hf" or "arch")) throw Bad("model kind is not \"hf\" or \"arch\"");
            var sets = (m["sets"] as JsonObject ?? new JsonObject()).ToDictionary(kv => kv.Key, kv => kv.Value?.GetValue<string>() ?? throw Bad($"set '{kv.Key}' is null"), StringComparer.Ordinal);
            var source = new QuantizedModelSource(kind, m["arch"]?.GetValue<string>(), m["config"]?.GetValue<string>(), sets);
            if (kind == "arch" && source.ArchPath is null) throw Bad("an arch model without its \"arch\" path");
            var linears = (root["linears"] as JsonArray ?? throw Bad("no \"linears\" array")).Select(node =>
            {
                var e = node as JsonObject ?? throw Bad("a linear entry is not an object");
                string Req(string key) => e[key]?.GetValue<string>() ?? throw Bad($"a linear entry has no \"{key}\"");
                var entry = new QuantizedLinearEntry(Req("weight"), Req("scheme"), e["group_size"]?.GetValue<int>() ?? throw Bad("a linear entry has no \"group_size\""),
                    Req("codes"), Req("scales"), e["zeros"]?.GetValue<string>(), e["input_scale"]?.GetValue<string>());
                if (entry.Scheme is not ("int8" or "int4" or "w8a8" or "sparse24")) throw Bad($"linear '{entry.Weight}' has unknown scheme '{entry.Scheme}'");
                if (entry.Scheme == "sparse24" && (entry.GroupSize != 4 || entry.InputScale is not null))
                    throw Bad($"linear '{entry.Weight}': sparse24 has group size 4 and no input scale");
                if ((entry.Zeros is not null) != (entry.Scheme == "int4")) throw Bad($"linear '{entry.Weight}': zero points go with int4 only");
                return entry;
            }).ToList();
            // Two entries for one weight would be two rewrites of one linear: ambiguous (found by the quantized-folder fuzzer).
            var twice = linears.GroupBy(e => e.Weight, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
            if (twice is not null) throw Bad($"linear '{twice.Key}' is listed twice");
            var replaced = (root["replaced"] as JsonArray ?? new JsonArray()).Select(n => n?.GetValue<string>() ?? throw Bad("a null name in \"replaced\"")).ToList();
            return new QuantizedManifest(request, source, linears, replaced, root["calibration"] as JsonObject);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw Bad($"a value has the wrong type ({UserText.Detail(e.Message)})");
        }
        catch (McException e) when (!e.Message.StartsWith(path, StringComparison.Ordinal))
        {
            throw Bad(e.Message);   // the request's own checks (a scheme, a group size): name the file they came from
        }
    }

    /// <summary>Rewrites a freshly elaborated graph by the manifest; a listed weight the graph does not have is an error.</summary>
    public static void Apply(Graph graph, QuantizedManifest manifest, string folder)
    {
        var present = QuantizedLinears.Candidates(graph).Select(QuantizedLinears.WeightName).ToHashSet(StringComparer.Ordinal);
        var missing = manifest.Linears.FirstOrDefault(e => !present.Contains(e.Weight));
        if (missing is not null)
            throw new McException($"{Path.Combine(folder, ManifestName)}: quantized weight '{missing.Weight}' is not the weight of any linear of {graph.Name} (a folder for another model?)");
        try
        {
            QuantizedLinears.Rewrite(graph, manifest.Linears);
        }
        catch (McException e)
        {
            throw new McException($"{Path.Combine(folder, ManifestName)}: {UserText.Quote(e.Message)[1..^1]} (a corrupt quantized folder? re-run mc quantize)");
        }
    }
}
