using ModelCompiler.Runtime.Kernels;

namespace ModelCompiler.Tests.CpuKernels;

/// <summary>
/// The attention kernel against a textbook computation written here (the full score matrix, a softmax per row, in
/// double): the tiled path (no bias input) and the per-row path (a zero bias) on masks, windows with sinks, GQA
/// groups smaller and larger than a tile, a cache longer than the query, and head sizes with a vector tail.
/// </summary>
public class AttentionKernelTests
{
    public static TheoryData<int, int, int, int, int, int, AttentionMask, long, long, long> Cases() => new()
    {
        // batch, seq, keys, Hq, Hkv, D(=Dv unless noted below), mask, window, sinks, prefix
        { 1, 5, 5, 4, 4, 16, AttentionMask.Causal, 0, 0, 0 },
        { 2, 7, 7, 6, 2, 16, AttentionMask.Causal, 0, 0, 0 },        // group 3: two tokens per tile
        { 1, 3, 40, 12, 1, 8, AttentionMask.Causal, 0, 0, 0 },       // MQA, group 12 > 8 rows: heads split over tiles
        { 1, 1, 37, 6, 2, 32, AttentionMask.Causal, 0, 0, 0 },       // decode over a cache
        { 1, 9, 9, 2, 2, 16, AttentionMask.None, 0, 0, 0 },          // bidirectional
        { 1, 9, 9, 2, 1, 16, AttentionMask.Prefix, 0, 0, 4 },
        { 1, 40, 40, 3, 1, 16, AttentionMask.Causal, 8, 2, 0 },      // sliding window with sinks: skipped key blocks
        { 1, 33, 33, 4, 2, 16, AttentionMask.Causal, 5, 0, 0 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void TiledAndPerRowPathsMatchTheTextbook(int batch, int seq, int keys, int hq, int hkv, int d, AttentionMask mask, long window, long sinks, long prefix)
    {
        foreach (int dv in new[] { d, d + 72 })   // + 72: one 64-column register chunk and a tail
        {
            var rng = new Random(seq * 1000 + keys * 10 + hq + dv);
            float[] Random(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
            var q = Random(batch * seq * hq * d);
            var k = Random(batch * keys * hkv * d);
            var v = Random(batch * keys * hkv * dv);
            double scale = 1 / Math.Sqrt(d);
            var expected = Textbook(q, k, v, batch, seq, keys, hq, hkv, d, dv, scale, mask, window, sinks, prefix);

            var tiled = new float[expected.Length];
            Attention.Forward(q, k, v, null, tiled, batch, seq, keys, hq, hkv, d, dv, scale, mask, window, sinks, prefix, default, "test");
            var perRow = new float[expected.Length];
            Attention.Forward(q, k, v, new float[1], perRow, batch, seq, keys, hq, hkv, d, dv, scale, mask, window, sinks, prefix, new int[4], "test");

            double tolerance = 1e-4 * Math.Max(1, expected.Max(Math.Abs));
            for (int i = 0; i < expected.Length; i++)
            {
                Assert.True(Math.Abs(tiled[i] - expected[i]) <= tolerance, $"tiled [{i}]: {tiled[i]} vs {expected[i]} (dv {dv})");
                Assert.True(Math.Abs(perRow[i] - expected[i]) <= tolerance, $"per-row [{i}]: {perRow[i]} vs {expected[i]} (dv {dv})");
            }
        }
    }

    /// <summary>
    /// The paged kernel against the contiguous one (itself held to the textbook above): a prefill of two sequences of
    /// different lengths, then a decode step whose long caches are split over threads by key ranges and combined.
    /// </summary>
    [Fact]
    public void PagedPrefillAndSplitDecodeMatchTheContiguousKernel()
    {
        const int hq = 6, hkv = 2, d = 16, dv = 24;
        int[] lengths = [700, 300];
        var rng = new Random(5);
        float[] Random(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        var keys = lengths.Select(n => Random(n * hkv * d)).ToArray();
        var values = lengths.Select(n => Random(n * hkv * dv)).ToArray();
        var queries = lengths.Select(n => Random(n * hq * d)).ToArray();
        double scale = 1 / Math.Sqrt(d);

        var pool = new ModelCompiler.Runtime.Paged.KvBlockPool([new ModelCompiler.Runtime.Paged.PagedLayer(hkv, d, dv)], capacityBlocks: 80);
        var sequences = lengths.Select(n => pool.CreateSequence(n)).ToArray();
        var batch = new ModelCompiler.Runtime.Paged.PagedBatch(pool, 1024, 2);

        // Step 1: every token but the last of each sequence; step 2: the last one (decode over the long caches).
        foreach (bool decode in new[] { false, true })
        {
            batch.Clear();
            var (q, k, v) = (new List<float>(), new List<float>(), new List<float>());
            var taken = new List<(int Sequence, int From, int Count)>();
            for (int s = 0; s < lengths.Length; s++)
            {
                int from = decode ? lengths[s] - 1 : 0, count = decode ? 1 : lengths[s] - 1;
                batch.Add(sequences[s], count);
                q.AddRange(queries[s].Skip(from * hq * d).Take(count * hq * d));
                k.AddRange(keys[s].Skip(from * hkv * d).Take(count * hkv * d));
                v.AddRange(values[s].Skip(from * hkv * dv).Take(count * hkv * dv));
                taken.Add((s, from, count));
            }
            int tokens = taken.Sum(t => t.Count);
            var y = new float[tokens * hq * dv];
            Attention.Paged(q.ToArray(), k.ToArray(), v.ToArray(), y, tokens, hq, hkv, d, dv, scale, AttentionMask.Causal, 0, 0, 0, false, batch, 0, "test");
            batch.Commit();

            int row = 0;
            foreach (var (s, from, count) in taken)
            {
                int keyCount = from + count;
                var expected = new float[count * hq * dv];
                Attention.Forward(queries[s].Skip(from * hq * d).Take(count * hq * d).ToArray(), keys[s][..(keyCount * hkv * d)], values[s][..(keyCount * hkv * dv)],
                    null, expected, 1, count, keyCount, hq, hkv, d, dv, scale, AttentionMask.Causal, 0, 0, 0, default, "test");
                double tolerance = 1e-4 * Math.Max(1, expected.Max(Math.Abs));
                for (int i = 0; i < expected.Length; i++)
                    Assert.True(Math.Abs(y[row * hq * dv + i] - expected[i]) <= tolerance,
                        $"{(decode ? "decode" : "prefill")}, sequence {s}, [{i}]: {y[row * hq * dv + i]} vs {expected[i]}");
                row += count;
            }
        }
    }

    private static double[] Textbook(float[] q, float[] k, float[] v, int batch, int seq, int keys, int hq, int hkv, int d, int dv,
        double scale, AttentionMask mask, long window, long sinks, long prefix)
    {
        var y = new double[batch * seq * hq * dv];
        int group = hq / hkv;
        for (int b = 0; b < batch; b++)
            for (int h = 0; h < hq; h++)
                for (int i = 0; i < seq; i++)
                {
                    long p = i + keys - seq;
                    var scores = new double[keys];
                    var visible = new bool[keys];
                    for (int j = 0; j < keys; j++)
                    {
                        bool allowed = mask switch
                        {
                            AttentionMask.Causal => j <= p,
                            AttentionMask.Prefix => j < prefix || j <= p,
                            _ => true,
                        };
                        if (allowed && window > 0) allowed = p - j < window || j < sinks;
                        visible[j] = allowed;
                        double dot = 0;
                        for (int x = 0; x < d; x++)
                            dot += (double)q[((b * seq + i) * hq + h) * d + x] * k[((b * keys + j) * hkv + h / group) * d + x];
                        scores[j] = dot * scale;
                    }
                    double max = Enumerable.Range(0, keys).Where(j => visible[j]).Select(j => scores[j]).DefaultIfEmpty(double.NaN).Max();
                    if (double.IsNaN(max)) continue;   // sees nothing: zero
                    double sum = 0;
                    var weights = new double[keys];
                    for (int j = 0; j < keys; j++) if (visible[j]) sum += weights[j] = Math.Exp(scores[j] - max);
                    for (int x = 0; x < dv; x++)
                    {
                        double acc = 0;
                        for (int j = 0; j < keys; j++) acc += weights[j] / sum * v[((b * keys + j) * hkv + h / group) * dv + x];
                        y[((b * seq + i) * hq + h) * dv + x] = acc;
                    }
                }
        return y;
    }
}
