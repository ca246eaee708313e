using System.Text.Json;

namespace ModelCompiler.Runtime.Tokenizers;

/// <summary>A JSON value with its file and path, whose accessors throw a one-line
/// <see cref="ModelFormatException"/> ("tokenizer.json: model.merges[3]: ...") on a missing or mistyped field.</summary>
internal readonly struct JNode
{
    public readonly JsonElement E;
    public readonly string File;
    public readonly string Path;

    public JNode(JsonElement e, string file, string path) { E = e; File = file; Path = path; }

    public ModelFormatException Error(string message) =>
        new($"{File}: {(Path.Length == 0 ? "" : Path + ": ")}{message}");

    public JsonValueKind Kind => E.ValueKind;
    public bool IsNull => E.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined;

    private string Child(string name) => Path.Length == 0 ? name : $"{Path}.{name}";

    public JNode? Opt(string name)
    {
        if (E.ValueKind != JsonValueKind.Object) throw Error($"expected an object, found {Describe(E)}");
        if (!E.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return new JNode(v, File, Child(name));
    }

    public JNode Req(string name) => Opt(name) ?? throw Error($"missing field '{name}'");

    public string Str()
    {
        if (E.ValueKind != JsonValueKind.String) throw Error($"expected a string, found {Describe(E)}");
        try { return E.GetString()!; }
        catch (InvalidOperationException) { throw Error("a string with an invalid \\u escape (a lone surrogate)"); }
    }
    public bool Bool() => E.ValueKind switch { JsonValueKind.True => true, JsonValueKind.False => false, _ => throw Error($"expected true or false, found {Describe(E)}") };
    public double Num() => E.ValueKind == JsonValueKind.Number ? E.GetDouble() : throw Error($"expected a number, found {Describe(E)}");
    public int Int()
    {
        if (E.ValueKind == JsonValueKind.Number && E.TryGetInt64(out long v) && v >= int.MinValue && v <= int.MaxValue) return (int)v;
        throw Error($"expected an integer, found {Describe(E)}");
    }
    public int Id()
    {
        int v = Int();
        if (v < 0) throw Error($"a token id must not be negative, found {v}");
        return v;
    }

    public string Str(string name) => Req(name).Str();
    public string? OptStr(string name) => Opt(name)?.Str();
    public bool Bool(string name, bool @default) => Opt(name)?.Bool() ?? @default;
    public int Int(string name, int @default) => Opt(name)?.Int() ?? @default;

    public IEnumerable<JNode> Items()
    {
        if (E.ValueKind != JsonValueKind.Array) throw Error($"expected a list, found {Describe(E)}");
        int i = 0;
        foreach (var item in E.EnumerateArray()) yield return new JNode(item, File, $"{Path}[{i++}]");
    }

    public IEnumerable<(string Name, JNode Value)> Props()
    {
        if (E.ValueKind != JsonValueKind.Object) throw Error($"expected an object, found {Describe(E)}");
        foreach (var p in E.EnumerateObject())
        {
            string name;
            try { name = p.Name; }
            catch (InvalidOperationException) { throw Error("a key with an invalid \\u escape (a lone surrogate)"); }
            yield return (name, new JNode(p.Value, File, Child(name)));
        }
    }

    /// <summary>The "type" field of a component (normalizer, pre-tokenizer, ...).</summary>
    public string Type() => Str("type");

    public static string Describe(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "a list",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => $"the number {e.GetRawText()}",
        JsonValueKind.True or JsonValueKind.False => e.GetRawText(),
        JsonValueKind.Null => "null",
        _ => "nothing",
    };
}
