using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Cli;

/// <summary>
/// <c>mc eval</c>'s <c>attention_mask</c> input, as Hugging Face takes it: int [batch, seq], 1 for a token and 0 for
/// padding (left or right, or anywhere), for a model whose graph has no such input. Each row runs alone on its unmasked
/// tokens (and the same positions of every other [batch, seq] input, such as token_type_ids), at positions 0..n−1, so
/// its outputs are exactly those of that sequence without padding; they are put back at the unmasked positions of
/// outputs that have the sequence axis, and padded positions are 0. Outputs without a sequence axis take the row's.
/// </summary>
internal sealed class AttentionMaskRows
{
    public const string Name = "attention_mask";

    private readonly string _seqSymbol;
    private readonly long _batch, _seq;
    private readonly long[][] _kept;
    private readonly Dictionary<string, RefTensor> _feeds;
    private readonly HashSet<string> _perToken;

    private AttentionMaskRows(string seqSymbol, long batch, long seq, long[][] kept, Dictionary<string, RefTensor> feeds, HashSet<string> perToken)
    {
        _seqSymbol = seqSymbol; _batch = batch; _seq = seq; _kept = kept; _feeds = feeds; _perToken = perToken;
    }

    /// <summary>The mask in <paramref name="path"/>, checked against <paramref name="feeds"/>' input_ids; null when the file has
    /// none or the graph takes attention_mask itself. Bad masks are one-line errors naming the file and the tensor.</summary>
    public static AttentionMaskRows? Read(Graph graph, string path, Dictionary<string, RefTensor> feeds)
    {
        if (graph.Inputs.Any(i => i.Attrs.Str("name") == Name)) return null;
        using var file = SafetensorsFile.Open(path);
        if (!file.Contains(Name)) return null;
        var ids = graph.Inputs.FirstOrDefault(i => i.Attrs.Str("name") == "input_ids");
        if (ids is null || ids.Type.Rank != 2 || ids.Type[1].Symbol is not { } seqSymbol || !feeds.TryGetValue("input_ids", out var inputIds))
            throw new McException($"{path}: tensor '{Name}' needs a model whose input_ids are [batch, seq]");
        var info = file.Get(Name);
        if (info.Shape.Length != 2 || info.Shape[0] != inputIds.Shape[0] || info.Shape[1] != inputIds.Shape[1])
            throw new McException($"{path}: tensor '{Name}' is [{string.Join(", ", info.Shape)}]; expected input_ids' shape [{string.Join(", ", inputIds.Shape)}]");
        double[] mask;
        try { mask = info.DType.IsFloat() ? file.ReadFloat64(Name) : file.ReadInt64(Name).Select(v => (double)v).ToArray(); }
        catch (McException e) { throw new McException($"{path}: tensor '{Name}': {e.Message}"); }
        long batch = info.Shape[0], seq = info.Shape[1];
        var kept = new long[batch][];
        for (long b = 0; b < batch; b++)
        {
            var row = new List<long>();
            for (long s = 0; s < seq; s++)
            {
                double m = mask[b * seq + s];
                if (m != 0 && m != 1)
                    throw new McException($"{path}: tensor '{Name}' holds {m} at [{b}, {s}]; expected 0 (padding) or 1 (token)");
                if (m == 1) row.Add(s);
            }
            if (row.Count == 0) throw new McException($"{path}: tensor '{Name}' row {b} masks every token");
            kept[b] = row.ToArray();
        }
        // Inputs laid out [batch, seq, ...] are cut per row; the others (an encoder-decoder's decoder_input_ids) go whole to each row.
        var perToken = graph.Inputs.Where(i => i.Type.Rank >= 2 && i.Type[1].Symbol == seqSymbol).Select(i => i.Attrs.Str("name")).ToHashSet(StringComparer.Ordinal);
        foreach (var name in perToken)
            if (feeds[name].Shape[0] != batch || feeds[name].Shape[1] != seq)
                throw new McException($"{path}: tensor '{name}' is [{string.Join(", ", feeds[name].Shape)}]; with '{Name}' it must start with [{batch}, {seq}]");
        foreach (var (name, tensor) in feeds)
            if (!perToken.Contains(name) && (tensor.Rank == 0 || tensor.Shape[0] != 1 && tensor.Shape[0] != batch))
                throw new McException($"{path}: tensor '{name}' is [{string.Join(", ", tensor.Shape)}]; with '{Name}' it must be [{batch}, ...] or [1, ...]");
        return new AttentionMaskRows(seqSymbol, batch, seq, kept, feeds, perToken);
    }

    /// <summary>Row <paramref name="b"/>'s inputs: its unmasked tokens only, batch 1.</summary>
    public Dictionary<string, RefTensor> Row(int b)
    {
        var row = new Dictionary<string, RefTensor>(StringComparer.Ordinal);
        foreach (var (name, tensor) in _feeds)
        {
            var shape = (long[])tensor.Shape.Clone();
            shape[0] = 1;
            // (offset, length) runs of elements to keep: one per unmasked token, or the row's whole slice.
            (long Offset, long Length)[] runs;
            if (_perToken.Contains(name))
            {
                long inner = tensor.ElementCount / (_batch * _seq);
                shape[1] = _kept[b].Length;
                runs = _kept[b].Select(s => ((b * _seq + s) * inner, inner)).ToArray();
            }
            else
            {
                long perRow = tensor.ElementCount / tensor.Shape[0];
                runs = [((tensor.Shape[0] == 1 ? 0 : b) * perRow, perRow)];
            }
            row[name] = tensor.IsFloat
                ? RefTensor.FromFloats(shape, Gather(tensor.F!, runs), tensor.DType)
                : RefTensor.FromInts(shape, Gather(tensor.I!, runs), tensor.DType);
        }
        return row;
    }

    private static T[] Gather<T>(T[] source, (long Offset, long Length)[] runs)
    {
        var result = new T[runs.Sum(r => r.Length)];
        long at = 0;
        foreach (var (offset, length) in runs)
        {
            Array.Copy(source, offset, result, at, length);
            at += length;
        }
        return result;
    }

    /// <summary>Runs every row alone and assembles the batch's outputs (sequence-axis outputs scattered back, padding 0).</summary>
    public Dictionary<string, (long[] Shape, float[] Data)> Run(Graph graph, IEvalTarget target)
    {
        var outputs = new Dictionary<string, (long[] Shape, float[] Data)>(StringComparer.Ordinal);
        var perToken = graph.Outputs.Where(o => o.Value.Type.Rank >= 2 && o.Value.Type[1].Symbol == _seqSymbol).Select(o => o.Key).ToHashSet(StringComparer.Ordinal);
        for (int b = 0; b < _batch; b++)
        {
            foreach (var (name, (shape, data)) in target.Run(Row(b)))
            {
                if (shape.Length == 0 || shape[0] != 1) throw new McException($"output '{name}' is [{string.Join(", ", shape)}]; with '{Name}' outputs must start with the batch axis");
                bool scatter = perToken.Contains(name);
                if (!outputs.TryGetValue(name, out var whole))
                {
                    var full = (long[])shape.Clone();
                    full[0] = _batch;
                    if (scatter) full[1] = _seq;
                    outputs[name] = whole = (full, new float[checked((int)full.Aggregate(1L, (a, d) => a * d))]);
                }
                if (!scatter)
                {
                    data.CopyTo(whole.Data.AsSpan((int)(b * data.LongLength)));
                    continue;
                }
                long inner = data.LongLength / _kept[b].Length;
                for (int i = 0; i < _kept[b].Length; i++)
                    data.AsSpan((int)(i * inner), (int)inner).CopyTo(whole.Data.AsSpan((int)((b * _seq + _kept[b][i]) * inner)));
            }
        }
        return outputs;
    }
}
