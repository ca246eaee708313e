using System.Buffers.Binary;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace ModelCompiler.Runtime;

/// <summary>Writes safetensors files that <see cref="SafetensorsFile"/> and the reference implementation read.</summary>
public static class SafetensorsWriter
{
    private const int HeaderAlignment = 8;

    /// <summary>
    /// Writes an 8-byte LE header length, the JSON header (metadata first if given, then tensors sorted by
    /// name), padded with spaces so the data region starts 8-aligned, then the tensors' bytes in that order.
    /// Every tensor is validated before the file is created, so a bad one leaves no partial file.
    /// </summary>
    public static void Write(string path, IEnumerable<TensorData> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(tensors);

        var sorted = tensors.OrderBy(t => t.Name, StringComparer.Ordinal).ToList();
        for (int i = 0; i < sorted.Count; i++)
        {
            sorted[i].Validate();
            if (i > 0 && sorted[i].Name == sorted[i - 1].Name)
                throw new McException($"{path}: duplicate tensor {SafetensorsErrors.Quote(sorted[i].Name)}");
        }

        using var stream = CreateWithHeader(path, BuildHeader(sorted.Select(t => (t.Name, t.DType, t.Shape, (long)t.Data.Length)).ToList(), metadata));
        foreach (var tensor in sorted) stream.Write(tensor.Data);
    }

    /// <summary>
    /// Writes tensors whose bytes are produced one at a time by <paramref name="data"/> (called once per name, in
    /// name order, after the header is written), so a checkpoint larger than memory can be written.
    /// </summary>
    public static void Write(string path, IReadOnlyList<(string Name, DType DType, long[] Shape)> layout, Func<string, byte[]> data)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(data);
        var sorted = layout.OrderBy(t => t.Name, StringComparer.Ordinal).ToList();
        for (int i = 1; i < sorted.Count; i++)
            if (sorted[i].Name == sorted[i - 1].Name)
                throw new McException($"{path}: duplicate tensor {SafetensorsErrors.Quote(sorted[i].Name)}");
        using var stream = CreateWithHeader(path, BuildHeader(sorted.Select(t => (t.Name, t.DType, t.Shape, checked(SafetensorsDTypes.ElementCount(t.Shape) * t.DType.SizeInBytes()))).ToList(), null));
        foreach (var tensor in sorted)
        {
            var bytes = data(tensor.Name);
            new TensorData(tensor.Name, tensor.DType, tensor.Shape, bytes).Validate();
            stream.Write(bytes);
        }
    }

    /// <summary>Creates the file and writes the length prefix and the header, padded with spaces to the alignment.</summary>
    private static FileStream CreateWithHeader(string path, byte[] header)
    {
        int padding = (HeaderAlignment - header.Length % HeaderAlignment) % HeaderAlignment;
        var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None);
        Span<byte> lengthPrefix = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(lengthPrefix, (ulong)(header.Length + padding));
        stream.Write(lengthPrefix);
        stream.Write(header);
        for (int i = 0; i < padding; i++) stream.WriteByte((byte)' ');
        return stream;
    }

    private static byte[] BuildHeader(List<(string Name, DType DType, long[] Shape, long Length)> sorted, IReadOnlyDictionary<string, string>? metadata)
    {
        using var buffer = new MemoryStream();
        // Relaxed escaping keeps non-ASCII names readable; the output is still strict JSON.
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            if (metadata is not null)
            {
                json.WriteStartObject(SafetensorsHeader.MetadataKey);
                foreach (var (key, value) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                    json.WriteString(key, value ?? throw new McException($"metadata {SafetensorsErrors.Quote(key)} has a null value"));
                json.WriteEndObject();
            }

            long offset = 0;
            foreach (var tensor in sorted)
            {
                json.WriteStartObject(tensor.Name);
                json.WriteString("dtype", SafetensorsDTypes.Name(tensor.DType));
                json.WriteStartArray("shape");
                foreach (long dim in tensor.Shape) json.WriteNumberValue(dim);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + tensor.Length);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += tensor.Length;
            }
            json.WriteEndObject();
        }
        return buffer.ToArray();
    }
}
