using System.Text.Json;
using ModelCompiler.Runtime.Tokenizers;

namespace ModelCompiler.Runtime.Generation;

/// <summary>
/// What a model folder says about generating from it: the EOS ids (<c>generation_config.json</c>'s
/// <c>eos_token_id</c>, an int or a list; else config.json's; else the tokenizer's EOS), the BOS id and whether
/// prompts start with it (<c>tokenizer_config.json</c>'s <c>add_bos_token</c>), and the sampling defaults
/// (<c>do_sample</c>, <c>temperature</c>, <c>top_k</c>, <c>top_p</c>) as Hugging Face's <c>generate</c> reads them.
/// </summary>
public sealed record GenerationDefaults(IReadOnlyList<int> EosIds, int? BosId, bool AddBos, SamplingOptions Sampling)
{
    /// <summary>The defaults of <paramref name="modelFolder"/> (null: only the tokenizer's) for <paramref name="tokenizer"/>.</summary>
    public static GenerationDefaults Load(string? modelFolder, ITokenizer tokenizer)
    {
        var generation = ReadJson(modelFolder, "generation_config.json");
        var config = ReadJson(modelFolder, "config.json");
        var tokenizerFolder = Path.GetDirectoryName(Path.GetFullPath(tokenizer.Source));
        var tokenizerConfig = ReadJson(tokenizerFolder, "tokenizer_config.json");

        var eos = Ids(generation, "eos_token_id") ?? Ids(config, "eos_token_id")
            ?? (tokenizer.SpecialIds.Eos is int e ? [e] : []);
        int? bos = Ids(generation, "bos_token_id")?.FirstOrDefault() ?? Ids(config, "bos_token_id")?.FirstOrDefault() ?? tokenizer.SpecialIds.Bos;
        bool addBos = Bool(tokenizerConfig, "add_bos_token") ?? false;
        if (addBos && bos is null) throw new McException($"{tokenizerFolder}: tokenizer_config.json sets add_bos_token but no BOS token id is known");

        // Hugging Face: greedy unless do_sample; when sampling, temperature 1, top_k 50, top_p 1 unless set.
        var sampling = Bool(generation, "do_sample") == true
            ? new SamplingOptions(Number(generation, "temperature") ?? 1.0, (int)(Number(generation, "top_k") ?? 50), Number(generation, "top_p") ?? 1.0)
            : SamplingOptions.Greedy;
        return new GenerationDefaults(eos, bos, addBos, sampling);
    }

    /// <summary>The prompt's ids: encoded with the tokenizer's post-processor, and BOS put first when
    /// tokenizer_config.json asks for it and the post-processor did not, or when the prompt is empty (as Hugging
    /// Face's generate starts from bos_token_id without input).</summary>
    public List<int> EncodePrompt(ITokenizer tokenizer, string prompt)
    {
        var ids = tokenizer.Encode(prompt, addSpecialTokens: true).ToList();
        if ((AddBos || ids.Count == 0) && BosId is int bos && (ids.Count == 0 || ids[0] != bos)) ids.Insert(0, bos);
        return ids;
    }

    /// <summary>A parsed JSON object and the file it came from (for error messages).</summary>
    private sealed record JsonFile(string Path, JsonElement Root);

    private static JsonFile? ReadJson(string? folder, string name)
    {
        if (folder is null) return null;
        var path = Path.Combine(folder, name);
        if (!File.Exists(path)) return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new McException($"{path}: expected a JSON object");
            return new JsonFile(path, doc.RootElement.Clone());
        }
        catch (JsonException e) { throw new McException($"{path}: malformed JSON: {UserText.Detail(e.Message)}"); }
        catch (IOException e) { throw new McException($"{path}: cannot read: {e.Message}"); }
    }

    /// <summary>An id or a list of ids; null when absent or JSON null.</summary>
    private static List<int>? Ids(JsonFile? doc, string key)
    {
        if (doc is null || !doc.Root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var one) && one >= 0) return [one];
        if (v.ValueKind == JsonValueKind.Array)
        {
            var ids = new List<int>();
            foreach (var item in v.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out var id) || id < 0)
                    throw new McException($"{doc.Path}: \"{key}\": expected token ids (non-negative integers), found {item.GetRawText()}");
                ids.Add(id);
            }
            return ids;
        }
        throw new McException($"{doc.Path}: \"{key}\": expected a token id or a list of them, found {v.GetRawText()}");
    }

    private static bool? Bool(JsonFile? doc, string key) =>
        doc is not null && doc.Root.TryGetProperty(key, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : null;

    private static double? Number(JsonFile? doc, string key) =>
        doc is not null && doc.Root.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;
}
