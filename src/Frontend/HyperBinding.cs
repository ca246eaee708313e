using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelCompiler.Runtime;

namespace ModelCompiler.Frontend;

/// <summary>
/// Fixes every hyperparameter's value. Precedence: <c>--set</c>, then the first config.json key
/// listed in its <c>from</c> clause that is present and not null, then its default expression.
/// A config.json key the model neither maps nor ignores is an error, never silently dropped.
/// </summary>
public static class HyperBinding
{
    /// <summary>Keys every Hugging Face config may carry that have no effect on inference.</summary>
    public static readonly IReadOnlySet<string> UniversalIgnoredKeys = new HashSet<string>(StringComparer.Ordinal)
    {
        "architectures", "model_type", "transformers_version", "torch_dtype", "dtype", "_name_or_path", "use_cache",
        "initializer_range", "initializer_factor", "output_attentions", "output_hidden_states", "return_dict",
        "bos_token_id", "pad_token_id", "sep_token_id", "id2label", "label2id", "problem_type", "tokenizer_class",
        "prefix", "task_specific_params", "finetuning_task", "chunk_size_feed_forward", "is_decoder", "add_cross_attention",
        "cross_attention_hidden_size", "tie_encoder_decoder", "pruned_heads", "torchscript", "use_bfloat16",
        "attention_dropout", "hidden_dropout", "dropout", "dropout_rate", "attn_pdrop", "resid_pdrop", "embd_pdrop",
        "hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout", "summary_first_dropout",
        "output_router_logits", "router_aux_loss_coef", "router_jitter_noise",
    };

    public static Dictionary<string, Value> Resolve(ModelSource source, JsonObject? config, string? configPath,
        IReadOnlyDictionary<string, string> sets)
    {
        foreach (var name in sets.Keys)
            if (source.Hypers.All(h => h.Name != name))
                throw new McException($"--set {name}: {source.RootPath} has no hyperparameter '{name}' (it has: {string.Join(", ", source.Hypers.Select(h => h.Name))})");

        if (config is not null) CheckConfigKeys(source, config, configPath ?? "config.json");

        var values = new Dictionary<string, Value>(StringComparer.Ordinal);
        foreach (var h in source.Hypers)
        {
            var type = h.Type.Name;
            Value value;
            if (sets.TryGetValue(h.Name, out var text)) value = ParseSet(h.Name, type, text);
            else if (config is not null && type is "ints" or "floats" && ExplicitNull(config, h.ConfigKeys))
                value = new ListValue([]);   // "eos_token_id": null means no such ids, not "use the default"
            else if (config is not null && FindKey(config, h.ConfigKeys) is { } found)
                value = FromJson(found.Node, type) ?? throw new McException(
                    $"{configPath}: '{found.Key}' is {found.Node.ToJsonString()}, but hyperparameter '{h.Name}' is {Article(type)}");
            else
            {
                try { value = Elaborator.EvalDefault(source, h.Default, values); }
                catch (DiagnosticException e) { throw Failed(source, e.Diagnostic); }
                catch (OverflowException) { throw Failed(source, new Diagnostic(Severity.Error, Codes.Arithmetic, h.Default.Span, "integer overflow")); }
                if (!ValueTypes.TryConvert(value, type, out value))
                    throw Failed(source, new Diagnostic(Severity.Error, Codes.BadHyperValue, h.Default.Span,
                        $"the default of '{h.Name}' is {Describe(value)} but it is declared {type}"));
            }
            values[h.Name] = value;
        }
        return values;
    }

    /// <summary>An error in a default expression, rendered like any other diagnostic (source line and caret).</summary>
    private static CompilationFailedException Failed(ModelSource source, Diagnostic diagnostic)
    {
        var bag = new DiagnosticBag();
        foreach (var file in source.Files) bag.AddSource(file.Path, file.Text);
        bag.Add(diagnostic);
        return new CompilationFailedException(bag);
    }

    private static string Describe(Value v) => v switch
    {
        StringValue s => $"the string \"{s.V}\"",
        ListValue or NoneValue or TensorValue or DimValue => $"{(v.Kind is "int" or "ints" ? "an" : "a")} {v.Kind}",
        _ => $"{(v.Kind is "int" ? "an" : "a")} {v.Kind} ({v})",
    };

    /// <summary>
    /// Every key must be mapped by a hyperparameter, ignored, or null. Inside an object of which only some
    /// keys are mapped (rope_parameters.rope_theta), the other keys are checked the same way, so
    /// rope_parameters.low_freq_factor is an error rather than silently dropped.
    /// </summary>
    private static void CheckConfigKeys(ModelSource source, JsonObject config, string configPath)
    {
        var mapped = source.Hypers.SelectMany(h => h.ConfigKeys).ToHashSet(StringComparer.Ordinal);
        CheckObject(source, config, "", mapped, configPath);
    }

    private static void CheckObject(ModelSource source, JsonObject obj, string prefix, HashSet<string> mapped, string configPath)
    {
        foreach (var (name, node) in obj)
        {
            var key = prefix + name;
            if (node is null || mapped.Contains(key) || source.IgnoredConfigKeys.Contains(key)
                || (prefix.Length == 0 && UniversalIgnoredKeys.Contains(key))) continue;
            if (node is JsonObject child && mapped.Any(m => m.StartsWith(key + ".", StringComparison.Ordinal)))
            {
                CheckObject(source, child, key + ".", mapped, configPath);
                continue;
            }
            throw new McException(
                $"{configPath}: key {UserText.Quote(key)} ({Truncate(node.ToJsonString())}) is not supported by {source.RootPath}: map it with 'hyper ... from {UserText.Quote(key)[1..^1]}' or, if it has no effect on inference, list it in 'ignore'");
        }
    }

    private static string Truncate(string s) => s.Length <= 40 ? s : s[..37] + "...";

    private static (string Key, JsonNode Node)? FindKey(JsonObject config, IEnumerable<string> keys)
    {
        foreach (var key in keys)
        {
            JsonNode? node = config;
            foreach (var part in key.Split('.'))
                node = node is JsonObject o && o.TryGetPropertyValue(part, out var child) ? child : null;
            if (node is not null) return (key, node);
        }
        return null;
    }

    /// <summary>Whether the first of <paramref name="keys"/> that the config mentions is there as an explicit null.</summary>
    private static bool ExplicitNull(JsonObject config, IEnumerable<string> keys)
    {
        foreach (var key in keys)
        {
            JsonNode? parent = config;
            var parts = key.Split('.');
            foreach (var part in parts[..^1])
                parent = parent is JsonObject o && o.TryGetPropertyValue(part, out var child) ? child : null;
            if (parent is JsonObject last && last.TryGetPropertyValue(parts[^1], out var value))
                return value is null;
        }
        return false;
    }

    private static string Article(string type) => ValueTypes.Describe(type);

    private static Value? FromJson(JsonNode node, string type)
    {
        if (node is JsonArray array)
        {
            if (type is not ("ints" or "floats")) return null;
            var items = array.Select(x => x is null ? null : FromJson(x, type == "ints" ? "int" : "float")).ToList();
            return items.Any(x => x is null) ? null : new ListValue(items.Select(x => x!).ToImmutableArrayCompat());
        }
        if (node is not JsonValue v) return null;
        // A value built in code (new JsonObject { ["n"] = 2 }) holds a CLR int, and TryGetValue<long> and
        // TryGetValue<double> both answer false for it; read it back as parsed JSON so every number reads alike.
        if (!v.TryGetValue<JsonElement>(out _)) v = (JsonValue)JsonNode.Parse(v.ToJsonString())!;
        switch (type)
        {
            case "int" or "ints":
                if (v.GetValueKind() != JsonValueKind.Number) return null;
                Value? single = v.TryGetValue<long>(out var l) ? new IntValue(l)
                    : v.TryGetValue<double>(out var d) && d == Math.Floor(d) && Math.Abs(d) < 1e15 ? new IntValue((long)d) : null;
                return single is null ? null : type == "ints" ? new ListValue([single]) : single;
            case "float" or "floats":
                if (v.GetValueKind() != JsonValueKind.Number || !v.TryGetValue<double>(out var f)) return null;
                return type == "floats" ? new ListValue([new FloatValue(f)]) : new FloatValue(f);
            case "bool":
                return v.GetValueKind() switch { JsonValueKind.True => new BoolValue(true), JsonValueKind.False => new BoolValue(false), _ => null };
            case "string":
                return v.GetValueKind() == JsonValueKind.String ? new StringValue(v.GetValue<string>()) : null;
            default:
                return null;
        }
    }

    private static Value ParseSet(string name, string type, string text)
    {
        var inv = CultureInfo.InvariantCulture;
        Value? value = type switch
        {
            "int" => long.TryParse(text, NumberStyles.AllowLeadingSign, inv, out var l) ? new IntValue(l) : null,
            "float" => double.TryParse(text, NumberStyles.Float, inv, out var d) && double.IsFinite(d) ? new FloatValue(d) : null,
            "bool" => text switch { "true" => new BoolValue(true), "false" => new BoolValue(false), _ => null },
            "string" => new StringValue(text),
            "ints" => text.Length == 0 ? new ListValue([]) : text.Split(',').All(p => long.TryParse(p, NumberStyles.AllowLeadingSign, inv, out _))
                ? new ListValue(text.Split(',').Select(p => (Value)new IntValue(long.Parse(p, inv))).ToImmutableArrayCompat()) : null,
            "floats" => text.Split(',').All(p => double.TryParse(p, NumberStyles.Float, inv, out _))
                ? new ListValue(text.Split(',').Select(p => (Value)new FloatValue(double.Parse(p, inv))).ToImmutableArrayCompat()) : null,
            _ => null,
        };
        return value ?? throw new McException($"--set {name}={text}: '{name}' is {Article(type)}");
    }

    private static System.Collections.Immutable.ImmutableArray<Value> ToImmutableArrayCompat(this IEnumerable<Value> items) =>
        System.Collections.Immutable.ImmutableArray.CreateRange(items);
}
