using System.Buffers.Binary;

namespace ModelCompiler.Runtime.Gguf;

/// <summary>
/// A llama.cpp GGUF file as a <see cref="WeightStore"/> file: every tensor under its Hugging Face name, Q/K rows
/// un-permuted, shapes in row-major order. A Q8_0 or Q4_0 weight [N, K] reads as its dequantized floats and also as
/// the tensors the quantized-linear kernels take, straight from its blocks (no requantization):
/// <c>name.codes</c> (Q8_0: int8 [N, K]; Q4_0: the 16 code bytes of each block, uint8 [N, K/2], which is already
/// <see cref="Kernels.QuantizedWeight"/>'s int4 layout), <c>name.scales</c> (each block's fp16 scale as fp32 [N, K/32])
/// and for Q4_0 <c>name.zeros</c> (8 everywhere: Q4_0 is w = d·(q − 8)).
/// </summary>
public sealed class GgufWeights : ITensorSource
{
    /// <summary>Which view of a GGUF tensor a name reads.</summary>
    private enum Part { Values, Codes, Scales, Zeros }

    private sealed record Entry(TensorInfo Info, GgufTensor Source, Part Part, long PermutedHeads);

    private readonly Dictionary<string, Entry> _byName = new(StringComparer.Ordinal);

    public GgufFile File { get; }

    public string Path => File.Path;

    public IReadOnlyList<TensorInfo> Tensors { get; }

    /// <summary>The 2-D Q8_0 / Q4_0 weights by Hugging Face name, with the scheme of the kernel that multiplies them (int8 or int4).</summary>
    public IReadOnlyList<(string Weight, string Scheme)> QuantizedWeights { get; }

    private GgufWeights(GgufFile file)
    {
        File = file;
        var quantized = new List<(string, string)>();
        foreach (var t in file.Tensors)
        {
            var name = GgufLlama.HfName(t.Name) ?? t.Name;
            long heads = GgufLlama.PermutedHeads(file, t.Name);
            long permutedRows = t.Dims.Length == 1 ? t.Dims[0] : t.Rows;   // a bias [N] is permuted like the weight's rows
            if (heads > 0 && (t.Dims.Length > 2 || permutedRows % heads != 0 || permutedRows / heads % 2 != 0))
                throw GgufFile.Error(Path, $"tensor {UserText.Quote(t.Name)}: {permutedRows} rows do not split into {heads} heads of an even size (its Q/K permutation cannot be undone)");
            var shape = t.Shape;
            Add(name, new TensorInfo(name, t.Type switch { GgmlType.F16 => DType.F16, GgmlType.BF16 => DType.BF16, _ => DType.F32 }, shape, t.Offset, t.ByteLength), t, Part.Values, heads);
            if (t.Type is GgmlType.Q8_0 or GgmlType.Q4_0 && t.Dims.Length == 2)
            {
                long n = t.Dims[1], k = t.Dims[0];
                bool int4 = t.Type == GgmlType.Q4_0;
                Add(name + ".codes", new TensorInfo(name + ".codes", int4 ? DType.U8 : DType.I8, int4 ? [n, k / 2] : [n, k], t.Offset, int4 ? n * k / 2 : n * k), t, Part.Codes, heads);
                Add(name + ".scales", new TensorInfo(name + ".scales", DType.F32, [n, k / GgufFile.BlockSize], t.Offset, n * k / GgufFile.BlockSize * 4), t, Part.Scales, heads);
                if (int4) Add(name + ".zeros", new TensorInfo(name + ".zeros", DType.U8, [n, k / GgufFile.BlockSize], t.Offset, n * k / GgufFile.BlockSize), t, Part.Zeros, heads);
                quantized.Add((name, int4 ? "int4" : "int8"));
            }
        }
        Tensors = _byName.Values.Select(e => e.Info).OrderBy(i => i.Name, StringComparer.Ordinal).ToList();
        QuantizedWeights = quantized;
    }

    private void Add(string name, TensorInfo info, GgufTensor source, Part part, long heads)
    {
        if (!_byName.TryAdd(name, new Entry(info, source, part, heads)))
            throw GgufFile.Error(Path, $"tensor {UserText.Quote(source.Name)} maps to {UserText.Quote(name)}, which another tensor already has");
    }

    public static GgufWeights Open(string path)
    {
        var file = GgufFile.Open(path);
        try { return new GgufWeights(file); }
        catch { file.Dispose(); throw; }
    }

    public bool Contains(string name) => _byName.ContainsKey(name);

    public TensorInfo Get(string name) => Find(name).Info;

    private Entry Find(string name) =>
        _byName.TryGetValue(name, out var e) ? e : throw GgufFile.Error(Path, $"no tensor {UserText.Quote(name)}");

    public float[] ReadFloat32(string name)
    {
        var e = Find(name);
        var t = e.Source;
        long rows = t.Rows;
        long outRow = e.Part switch
        {
            Part.Values => t.RowLength,
            Part.Codes => t.Type == GgmlType.Q4_0 ? t.RowLength / 2 : t.RowLength,
            _ => t.RowLength / GgufFile.BlockSize,
        };
        if (rows * outRow > Array.MaxLength) throw GgufFile.Error(Path, $"tensor {UserText.Quote(t.Name)} has {rows * outRow} elements, too many for one array");
        var result = new float[rows * outRow];
        var bytes = File.Bytes(t);
        if (e.PermutedHeads > 0 && t.Dims.Length == 1)
        {
            var values = new float[result.Length];
            DecodeRow(t.Type, e.Part, bytes, values);
            for (long r = 0; r < values.Length; r++) result[r] = values[SourceRow(r, values.Length / e.PermutedHeads)];
            return result;
        }
        long inRow = rows == 0 ? 0 : t.ByteLength / rows;
        for (long r = 0; r < rows; r++)
        {
            // Hugging Face row r of a permuted Q/K weight is GGUF row SourceRow(r).
            long source = e.PermutedHeads > 0 ? SourceRow(r, rows / e.PermutedHeads) : r;
            DecodeRow(t.Type, e.Part, bytes.Slice((int)(source * inRow), (int)inRow), result.AsSpan((int)(r * outRow), (int)outRow));
        }
        return result;
    }

    public double[] ReadFloat64(string name) => Array.ConvertAll(ReadFloat32(name), v => (double)v);

    public long[] ReadInt64(string name)
    {
        var e = Find(name);
        if (e.Part is not (Part.Codes or Part.Zeros)) throw GgufFile.Error(Path, $"tensor {UserText.Quote(name)} holds floats, not integers");
        return Array.ConvertAll(ReadFloat32(name), v => (long)v);
    }

    /// <summary>
    /// convert_hf_to_gguf.py's permute reshapes each head's D rows as (2, D/2) and swaps the axes, so the Hugging Face
    /// row h·D + i·D/2 + j (the two halves RoPE rotates together) was written as row h·D + 2j + i.
    /// </summary>
    public static long SourceRow(long hfRow, long headSize)
    {
        long head = hfRow / headSize, within = hfRow % headSize, half = headSize / 2;
        long i = within / half, j = within % half;
        return head * headSize + 2 * j + i;
    }

    private static void DecodeRow(GgmlType type, Part part, ReadOnlySpan<byte> src, Span<float> dst)
    {
        switch (type, part)
        {
            case (GgmlType.F32, _):
                for (int i = 0; i < dst.Length; i++) dst[i] = BinaryPrimitives.ReadSingleLittleEndian(src[(4 * i)..]);
                break;
            case (GgmlType.F16, _):
                for (int i = 0; i < dst.Length; i++) dst[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(src[(2 * i)..]);
                break;
            case (GgmlType.BF16, _):
                for (int i = 0; i < dst.Length; i++) dst[i] = SafetensorsFile.BFloat16ToSingle(BinaryPrimitives.ReadUInt16LittleEndian(src[(2 * i)..]));
                break;
            case (GgmlType.Q8_0 or GgmlType.Q4_0, Part.Scales):
                int blockBytes = type == GgmlType.Q8_0 ? 34 : 18;
                for (int b = 0; b < dst.Length; b++) dst[b] = (float)BinaryPrimitives.ReadHalfLittleEndian(src[(b * blockBytes)..]);
                break;
            case (GgmlType.Q4_0, Part.Zeros):
                dst.Fill(8);
                break;
            case (GgmlType.Q8_0, Part.Codes):
                for (int b = 0; b < dst.Length / 32; b++)
                    for (int i = 0; i < 32; i++) dst[b * 32 + i] = (sbyte)src[b * 34 + 2 + i];
                break;
            case (GgmlType.Q4_0, Part.Codes):
                for (int b = 0; b < dst.Length / 16; b++)
                    for (int i = 0; i < 16; i++) dst[b * 16 + i] = src[b * 18 + 2 + i];
                break;
            case (GgmlType.Q8_0, Part.Values):
                for (int b = 0; b < dst.Length / 32; b++)
                {
                    float d = (float)BinaryPrimitives.ReadHalfLittleEndian(src[(b * 34)..]);
                    for (int i = 0; i < 32; i++) dst[b * 32 + i] = d * (sbyte)src[b * 34 + 2 + i];
                }
                break;
            case (GgmlType.Q4_0, Part.Values):
                for (int b = 0; b < dst.Length / 32; b++)
                {
                    float d = (float)BinaryPrimitives.ReadHalfLittleEndian(src[(b * 18)..]);
                    for (int i = 0; i < 16; i++)
                    {
                        byte q = src[b * 18 + 2 + i];
                        dst[b * 32 + i] = d * ((q & 0x0F) - 8);
                        dst[b * 32 + i + 16] = d * ((q >> 4) - 8);
                    }
                }
                break;
            default:
                throw new InvalidOperationException($"no decoder for {type} {part}");
        }
    }

    public void Dispose() => File.Dispose();

    public override string ToString() => File.ToString();
}
