using System.Text;
using System.Text.Json;

namespace ModelCompiler.Runtime;

/// <summary>
/// JSON that parses can still hold a string System.Text.Json refuses to decode: a \u escape of a lone surrogate
/// ("\ud800"). Reading it throws InvalidOperationException wherever it happens to be touched (even a property
/// lookup that scans past it), so readers of files from strangers check every string and name once, up front.
/// </summary>
public static class JsonStrings
{
    /// <summary>
    /// Throws a one-line <see cref="ModelFormatException"/> naming <paramref name="file"/> and the JSON path
    /// (model.vocab[3]) of the first string or property name that does not decode. The document must already
    /// have parsed with the same <paramref name="maxDepth"/>.
    /// </summary>
    public static void RequireDecodable(ReadOnlySpan<byte> utf8Json, string file, int maxDepth)
    {
        var reader = new Utf8JsonReader(utf8Json, new JsonReaderOptions { MaxDepth = maxDepth });
        // One frame per open container: the property name being read (objects) or the element index (arrays).
        var frames = new List<(bool IsArray, string? Name, int Index)>();
        while (reader.Read())
        {
            var token = reader.TokenType;
            if (token is not (JsonTokenType.PropertyName or JsonTokenType.EndObject or JsonTokenType.EndArray)
                && frames.Count > 0 && frames[^1].IsArray)
                frames[^1] = frames[^1] with { Index = frames[^1].Index + 1 };
            switch (token)
            {
                case JsonTokenType.StartObject: frames.Add((false, null, -1)); break;
                case JsonTokenType.StartArray: frames.Add((true, null, -1)); break;
                case JsonTokenType.EndObject or JsonTokenType.EndArray: frames.RemoveAt(frames.Count - 1); break;
                case JsonTokenType.PropertyName:
                    frames[^1] = frames[^1] with { Name = Decode(ref reader, file, frames, "a property name") };
                    break;
                case JsonTokenType.String:
                    Decode(ref reader, file, frames, "a string");
                    break;
            }
        }
    }

    private static string Decode(ref Utf8JsonReader reader, string file, List<(bool IsArray, string? Name, int Index)> frames, string what)
    {
        try { return reader.GetString()!; }
        catch (InvalidOperationException)
        {
            var path = Path(frames, includeLast: what == "a string");
            throw new ModelFormatException($"{file}: {(path.Length == 0 ? "" : path + ": ")}{what} with an invalid \\u escape (a lone surrogate)");
        }
    }

    private static string Path(List<(bool IsArray, string? Name, int Index)> frames, bool includeLast)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < frames.Count; i++)
        {
            var (isArray, name, index) = frames[i];
            if (isArray) sb.Append('[').Append(index).Append(']');
            else if (name is not null && (includeLast || i < frames.Count - 1)) sb.Append(sb.Length == 0 ? "" : ".").Append(name);
        }
        return UserText.Quote(sb.ToString())[1..^1];
    }
}
