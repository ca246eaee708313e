using System.Text;
using System.Text.Json.Nodes;
using CsCheck;
using ModelCompiler.Runtime;

namespace ModelCompiler.Tests.Reliability;

/// <summary>
/// One edit of a file, drawn by CsCheck: the numbers pick a position, a length and a value, each taken modulo
/// what the file allows, so shrinking a failing case shrinks towards the first byte and the simplest edit.
/// </summary>
public sealed record Mutation(MutationKind Kind, int Position, int Length, int Value)
{
    public override string ToString() => $"{Kind}(at {Position}, len {Length}, value {Value})";
}

public enum MutationKind
{
    FlipBit, SetByte, Truncate, DeleteRange, DuplicateRange, InsertBytes, InsertToken,
    // JSON only (ignored by the byte formats): edits on the parsed tree.
    JsonReplaceValue, JsonDuplicateKey, JsonDeleteMember,
}

/// <summary>
/// Random hostile edits for the property tests: bit flips, truncations, deletions, duplications, inserted
/// "interesting" bytes and tokens (huge and negative numbers, NaN/Inf spellings, quotes, brackets, lone
/// surrogates) and, for JSON, whole values replaced, keys duplicated and members removed.
/// </summary>
public static class HostileMutations
{
    /// <summary>Tokens that stress number parsing, string escapes and structure when spliced into a file.</summary>
    public static readonly string[] Tokens =
    [
        "-1", "0", "-0", "9223372036854775807", "9223372036854775808", "18446744073709551616", "-9223372036854775808",
        "1e999", "-1e999", "NaN", "Infinity", "-Infinity", "1e-400", "2147483648", "4294967296", "1.5",
        "\"", "\\", "{", "}", "[", "]", ",", ":", "null", "true", "\"\"", "\\u0000", "\\ud800", "\\udc00", "\u0000",
        "\"__metadata__\"", "\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"model\"", "\"vocab\"", "\"type\"",
        "\n", "#", "*/", "\u2028", "\uFEFF",
    ];

    /// <summary>JSON values that a reader must bound-check: huge/negative/fractional numbers, wrong types, deep nesting.</summary>
    public static readonly string[] JsonValues =
    [
        "-1", "0", "9223372036854775807", "18446744073709551615", "1e308", "1e999", "-1e999", "2.5", "-0.0",
        "4294967296", "2147483647", "1099511627776", "null", "true", "\"\"", "\"NaN\"", "\"Infinity\"", "\"\\u0000\"",
        "\"\\ud800\"", "[]", "{}", "[-1]", "[9223372036854775807, 9223372036854775807]", "[4294967296, 4294967296, 4294967296]",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", "{\"a\": {\"b\": {\"c\": {}}}}",
        "\"" + new string('x', 5000) + "\"",
    ];

    private static readonly Gen<Mutation> OneByteEdit = Gen.Select(
        Gen.Int[0, (int)MutationKind.InsertToken], Gen.Int[0, int.MaxValue], Gen.Int[0, 64], Gen.Int[0, int.MaxValue],
        (k, p, l, v) => new Mutation((MutationKind)k, p, l, v));

    private static readonly Gen<Mutation> OneAnyEdit = Gen.Select(
        Gen.Int[0, (int)MutationKind.JsonDeleteMember], Gen.Int[0, int.MaxValue], Gen.Int[0, 64], Gen.Int[0, int.MaxValue],
        (k, p, l, v) => new Mutation((MutationKind)k, p, l, v));

    /// <summary>One to four byte-level edits.</summary>
    public static readonly Gen<Mutation[]> ByteEdits = OneByteEdit.Array[1, 4];

    /// <summary>One to four edits, byte-level or on the JSON tree.</summary>
    public static readonly Gen<Mutation[]> JsonEdits = OneAnyEdit.Array[1, 4];

    public static byte[] Apply(byte[] original, IEnumerable<Mutation> edits)
    {
        var bytes = original;
        foreach (var m in edits) bytes = Apply(bytes, m);
        return bytes;
    }

    public static byte[] Apply(byte[] b, Mutation m)
    {
        int at = b.Length == 0 ? 0 : m.Position % b.Length;
        switch (m.Kind)
        {
            case MutationKind.FlipBit when b.Length > 0:
                {
                    var c = (byte[])b.Clone();
                    c[at] ^= (byte)(1 << (m.Value % 8));
                    return c;
                }
            case MutationKind.SetByte when b.Length > 0:
                {
                    byte[] interesting = [0x00, 0xFF, 0x7F, 0x80, 0x01, 0x22, 0x5C, 0x7B, 0x7D, 0x5B, 0x5D, 0x2D, 0x39];
                    var c = (byte[])b.Clone();
                    c[at] = interesting[m.Value % interesting.Length];
                    return c;
                }
            case MutationKind.Truncate:
                return b[..(b.Length == 0 ? 0 : m.Position % (b.Length + 1))];
            case MutationKind.DeleteRange:
                return [.. b[..at], .. b[Math.Min(b.Length, at + m.Length)..]];
            case MutationKind.DuplicateRange:
                {
                    var range = b[at..Math.Min(b.Length, at + m.Length)];
                    return [.. b[..at], .. range, .. range, .. b[at..]];
                }
            case MutationKind.InsertBytes:
                {
                    var rng = new Random(m.Value);
                    var extra = new byte[1 + m.Length % 8];
                    rng.NextBytes(extra);
                    return [.. b[..at], .. extra, .. b[at..]];
                }
            case MutationKind.InsertToken:
                return [.. b[..at], .. Encoding.UTF8.GetBytes(Tokens[m.Value % Tokens.Length]), .. b[at..]];
            case MutationKind.JsonReplaceValue or MutationKind.JsonDuplicateKey or MutationKind.JsonDeleteMember:
                return EditJson(b, m) ?? b;
            default:
                return b;
        }
    }

    /// <summary>A tree edit of a JSON document; null when the bytes are no longer JSON or have nothing to edit.</summary>
    private static byte[]? EditJson(byte[] b, Mutation m)
    {
        // System.Text.Json refuses what the readers must survive (duplicate keys, lone surrogates): no edit then.
        try { return EditJsonTree(b, m); }
        catch (Exception e) when (e is System.Text.Json.JsonException or ArgumentException or InvalidOperationException) { return null; }
    }

    private static byte[]? EditJsonTree(byte[] b, Mutation m)
    {
        var root = JsonNode.Parse(b);
        if (root is null) return null;
        var nodes = new List<JsonNode>();
        Collect(root, nodes);
        // A placeholder that serializes as itself, replaced by the hostile text after serialization.
        const string markerText = "mc-mutation-placeholder-7f3a";
        const string marker = "\"" + markerText + "\"";
        var markerValue = JsonValue.Create(markerText);
        switch (m.Kind)
        {
            case MutationKind.JsonReplaceValue:
                {
                    var target = nodes[m.Position % nodes.Count];
                    if (target.Parent is null) return null;
                    Replace(target, markerValue);
                    return Encoding.UTF8.GetBytes(Serialize(root).Replace(marker, JsonValues[m.Value % JsonValues.Length]));
                }
            case MutationKind.JsonDuplicateKey or MutationKind.JsonDeleteMember:
                {
                    var objects = nodes.OfType<JsonObject>().Where(o => o.Count > 0).ToList();
                    if (objects.Count == 0) return null;
                    var target = objects[m.Position % objects.Count];
                    var (key, value) = target.ElementAt(m.Value % target.Count);
                    if (m.Kind == MutationKind.JsonDeleteMember)
                    {
                        target.Remove(key);
                        return Encoding.UTF8.GetBytes(Serialize(root));
                    }
                    // A duplicated key cannot live in a JsonObject: splice it into the text.
                    var copy = Serialize(target);
                    var duplicated = "{" + System.Text.Json.JsonSerializer.Serialize(key) + ":" + (value is null ? "null" : Serialize(value)) + "," + copy[1..];
                    if (target.Parent is null) return Encoding.UTF8.GetBytes(duplicated);
                    Replace(target, markerValue);
                    return Encoding.UTF8.GetBytes(Serialize(root).Replace(marker, duplicated));
                }
            default:
                return null;
        }
    }

    private static string Serialize(JsonNode node) =>
        node.ToJsonString(new System.Text.Json.JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });

    private static void Collect(JsonNode node, List<JsonNode> into)
    {
        into.Add(node);
        switch (node)
        {
            case JsonObject o:
                foreach (var (_, v) in o) if (v is not null) Collect(v, into);
                break;
            case JsonArray a:
                foreach (var v in a) if (v is not null) Collect(v, into);
                break;
        }
    }

    private static void Replace(JsonNode target, JsonNode replacement)
    {
        switch (target.Parent)
        {
            case JsonObject o: o[target.GetPropertyName()] = replacement; break;
            case JsonArray a: a[target.GetElementIndex()] = replacement; break;
        }
    }

    /// <summary>
    /// The contract every reader keeps: an input is accepted, or rejected with the documented user-error type whose
    /// message is one line naming the file. Returns whether it was accepted.
    /// </summary>
    /// <param name="diagnosticsMayFollow">a DSL compilation failure may add its rendered diagnostics (source line,
    /// caret) after a first line that names the file</param>
    public static bool AcceptedOrRejectedCleanly<TError>(Action read, string fileName, bool diagnosticsMayFollow = false) where TError : McException
    {
        try
        {
            read();
            return true;
        }
        catch (Exception e)
        {
            if (e is not TError) throw new Xunit.Sdk.XunitException($"expected {typeof(TError).Name} or success, got {e.GetType().Name}: {e}");
            var message = diagnosticsMayFollow && e is ModelCompiler.Frontend.CompilationFailedException ? e.Message.Split('\n')[0] : e.Message;
            if (message.Contains('\n') || message.Contains('\r'))
                throw new Xunit.Sdk.XunitException($"message is not one line: {e.Message}");
            if (!message.Contains(fileName, StringComparison.Ordinal))
                throw new Xunit.Sdk.XunitException($"message does not name {fileName}: {e.Message}");
            return false;
        }
    }
}
