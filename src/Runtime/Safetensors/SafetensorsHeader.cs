using System.Text.Json;
using System.Text.Unicode;
using static ModelCompiler.Runtime.SafetensorsErrors;

namespace ModelCompiler.Runtime;

/// <summary>
/// Parses and validates the JSON header of a safetensors file. A hand-driven <see cref="Utf8JsonReader"/>
/// (rather than JsonDocument) lets us reject duplicate keys and check each value's JSON type as we go.
/// Everything rejected is a <see cref="ModelFormatException"/> naming the file, and the tensor if any.
/// </summary>
internal static class SafetensorsHeader
{
    /// <summary>Same cap as the reference implementation: a larger header is hostile, not a model.</summary>
    public const long MaxHeaderLength = 100_000_000;

    public const string MetadataKey = "__metadata__";

    public sealed record Parsed(IReadOnlyList<TensorInfo> Tensors, IReadOnlyDictionary<string, string> Metadata);

    /// <param name="dataStart">Absolute offset of the data region (8 + header length).</param>
    /// <param name="dataLength">Bytes from <paramref name="dataStart"/> to the end of the file.</param>
    public static Parsed Parse(string path, ReadOnlySpan<byte> json, long dataStart, long dataLength)
    {
        if (!Utf8.IsValid(json)) throw Format(path, "header is not valid UTF-8");

        var tensors = new List<TensorInfo>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            // Header nesting is at most 3 deep; a small limit stops hostile nesting early.
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 16 });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                throw Format(path, "header is not a JSON object");

            var keys = new HashSet<string>(StringComparer.Ordinal);
            while (NextToken(ref reader, path) != JsonTokenType.EndObject)
            {
                string key = reader.GetString()!;
                if (!keys.Add(key)) throw Format(path, $"header has duplicate entry {Quote(key)}");
                NextToken(ref reader, path);
                if (key == MetadataKey) ReadMetadata(ref reader, path, metadata);
                else tensors.Add(ReadTensor(ref reader, path, key, dataStart, dataLength));
            }
            // With a final block, Read() throws on trailing non-whitespace; returning true would be a bug.
            if (reader.Read()) throw Format(path, "header has content after its JSON object");
        }
        catch (JsonException e)
        {
            throw Format(path, $"header is not valid JSON: {UserText.Detail(e.Message)}", e);
        }
        catch (InvalidOperationException e)
        {
            // GetString() on an escape that decodes to an unpaired surrogate (e.g. "\ud800").
            throw Format(path, $"header has an invalid string: {UserText.Detail(e.Message)}", e);
        }

        RejectOverlaps(path, tensors);
        tensors.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return new Parsed(tensors, metadata);
    }

    private static void ReadMetadata(ref Utf8JsonReader reader, string path, Dictionary<string, string> metadata)
    {
        if (reader.TokenType == JsonTokenType.Null) return; // the reference reader treats null as "no metadata"
        if (reader.TokenType != JsonTokenType.StartObject)
            throw Format(path, $"{MetadataKey} is not a JSON object");
        while (NextToken(ref reader, path) != JsonTokenType.EndObject)
        {
            string key = reader.GetString()!;
            if (NextToken(ref reader, path) != JsonTokenType.String)
                throw Format(path, $"{MetadataKey} value of {Quote(key)} is not a string");
            if (!metadata.TryAdd(key, reader.GetString()!))
                throw Format(path, $"{MetadataKey} has duplicate key {Quote(key)}");
        }
    }

    private static TensorInfo ReadTensor(ref Utf8JsonReader reader, string path, string name, long dataStart, long dataLength)
    {
        string tensor = $"tensor {Quote(name)}";
        if (reader.TokenType != JsonTokenType.StartObject)
            throw Format(path, $"{tensor}: entry is not a JSON object");

        string? dtypeName = null;
        List<long>? shape = null, offsets = null;
        var fields = new HashSet<string>(StringComparer.Ordinal);
        while (NextToken(ref reader, path) != JsonTokenType.EndObject)
        {
            string field = reader.GetString()!;
            if (!fields.Add(field)) throw Format(path, $"{tensor}: duplicate field {Quote(field)}");
            NextToken(ref reader, path);
            switch (field)
            {
                case "dtype":
                    if (reader.TokenType != JsonTokenType.String) throw Format(path, $"{tensor}: 'dtype' is not a string");
                    dtypeName = reader.GetString()!;
                    break;
                case "shape":
                    shape = ReadIntegerArray(ref reader, path, tensor, field);
                    break;
                case "data_offsets":
                    offsets = ReadIntegerArray(ref reader, path, tensor, field);
                    break;
                default:
                    reader.Skip(); // tolerate fields a newer writer may add
                    break;
            }
        }

        if (dtypeName is null) throw Format(path, $"{tensor}: missing 'dtype'");
        if (shape is null) throw Format(path, $"{tensor}: missing 'shape'");
        if (offsets is null) throw Format(path, $"{tensor}: missing 'data_offsets'");

        if (!SafetensorsDTypes.TryParse(dtypeName, out var dtype))
            throw Format(path, $"{tensor}: unsupported dtype {Quote(dtypeName)}");
        foreach (long dim in shape)
            if (dim < 0) throw Format(path, $"{tensor}: negative dimension {dim} in shape [{string.Join(", ", shape)}]");

        long byteLength;
        try
        {
            byteLength = checked(SafetensorsDTypes.ElementCount(shape) * dtype.SizeInBytes());
        }
        catch (OverflowException)
        {
            throw Format(path, $"{tensor}: shape [{string.Join(", ", shape)}] is too large (byte length overflows int64)");
        }

        if (offsets.Count != 2)
            throw Format(path, $"{tensor}: 'data_offsets' must be [begin, end], got {offsets.Count} values");
        long begin = offsets[0], end = offsets[1];
        if (begin < 0 || end < 0) throw Format(path, $"{tensor}: negative data_offsets [{begin}, {end}]");
        if (begin > end) throw Format(path, $"{tensor}: data_offsets begin {begin} > end {end}");
        if (end > dataLength)
            throw Format(path, $"{tensor}: data_offsets end {end} is past the end of the data region ({dataLength} bytes; file truncated?)");
        if (end - begin != byteLength)
            throw Format(path, $"{tensor}: data_offsets [{begin}, {end}] span {end - begin} bytes, but {SafetensorsDTypes.Name(dtype)}[{string.Join(", ", shape)}] needs {byteLength}");

        return new TensorInfo(name, dtype, shape.ToArray(), dataStart + begin, byteLength);
    }

    private static List<long> ReadIntegerArray(ref Utf8JsonReader reader, string path, string tensor, string field)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
            throw Format(path, $"{tensor}: '{field}' is not an array");
        var values = new List<long>();
        while (NextToken(ref reader, path) != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out long value))
                throw Format(path, $"{tensor}: '{field}' must contain only int64 integers");
            values.Add(value);
        }
        return values;
    }

    /// <summary>Two tensors sharing bytes means a corrupt or hostile file. Empty tensors occupy nothing.</summary>
    private static void RejectOverlaps(string path, List<TensorInfo> tensors)
    {
        var byStart = tensors.Where(t => t.ByteLength > 0).OrderBy(t => t.DataOffset).ToList();
        for (int i = 1; i < byStart.Count; i++)
        {
            var previous = byStart[i - 1];
            if (byStart[i].DataOffset < previous.DataOffset + previous.ByteLength)
                throw Format(path, $"tensors {Quote(previous.Name)} and {Quote(byStart[i].Name)} overlap in the data region");
        }
    }

    /// <summary>
    /// Advances one token. The header is parsed as one final block, so an incomplete document makes
    /// Read() throw rather than return false; the check is only a guard.
    /// </summary>
    private static JsonTokenType NextToken(ref Utf8JsonReader reader, string path)
    {
        if (!reader.Read()) throw Format(path, "header JSON ends unexpectedly");
        return reader.TokenType;
    }
}
