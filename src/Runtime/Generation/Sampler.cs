namespace ModelCompiler.Runtime.Generation;

/// <summary>
/// How the next token is chosen from the logits. <see cref="Temperature"/> 0 is greedy (the first largest logit);
/// otherwise the logits are divided by the temperature, cut to the <see cref="TopK"/> largest (0: no cut), then to
/// the smallest set of most likely tokens whose probability reaches <see cref="TopP"/> (1: no cut), and one token
/// is drawn from what is left, renormalized: Hugging Face's temperature → top-k → top-p warpers, in that order.
/// </summary>
public sealed record SamplingOptions(double Temperature = 1.0, int TopK = 0, double TopP = 1.0)
{
    public static SamplingOptions Greedy { get; } = new(0, 0, 1);

    public bool IsGreedy => Temperature == 0;

    /// <summary>Throws a one-line <see cref="McException"/> naming the option that is out of range.</summary>
    public void Validate()
    {
        if (!(Temperature >= 0) || double.IsInfinity(Temperature)) throw new McException($"--temperature {Temperature}: expected a finite number >= 0 (0 is greedy)");
        if (TopK < 0) throw new McException($"--top-k {TopK}: expected a number of tokens >= 0 (0 keeps them all)");
        if (!(TopP > 0 && TopP <= 1)) throw new McException($"--top-p {TopP}: expected a probability in (0, 1]");
    }
}

/// <summary>
/// Picks tokens by <see cref="SamplingOptions"/> with its own seeded generator (<see cref="Xoshiro256StarStar"/>), so
/// a seed gives the same tokens on every machine and .NET version (System.Random's algorithm is unspecified).
/// </summary>
public sealed class Sampler
{
    private readonly Xoshiro256StarStar _random;
    private int[] _order = [];
    private double[] _probabilities = [];

    public Sampler(SamplingOptions options, ulong seed)
    {
        options.Validate();
        Options = options;
        Seed = seed;
        _random = new Xoshiro256StarStar(seed);
    }

    public SamplingOptions Options { get; }

    public ulong Seed { get; }

    /// <summary>The next token id for <paramref name="logits"/> (one row, the vocabulary). Ids in
    /// <paramref name="suppressed"/> are never chosen (e.g. EOS before a minimum length).</summary>
    public int Next(ReadOnlySpan<float> logits, IReadOnlySet<int>? suppressed = null)
    {
        if (Options.IsGreedy) return ArgMax(logits, suppressed);
        int kept = Candidates(logits, suppressed);
        double u = _random.NextDouble(), cumulative = 0;
        // Walk the kept tokens in id order, so the draw does not depend on how ties were sorted.
        Array.Sort(_order, 0, kept);
        for (int i = 0; i < kept; i++)
        {
            cumulative += _probabilities[_order[i]];
            if (u < cumulative) return _order[i];
        }
        return _order[kept - 1]; // rounding left u above the last cumulative sum
    }

    /// <summary>
    /// The distribution <see cref="Next"/> draws from: token id → probability after temperature, top-k and top-p
    /// (only the kept ids). Exposed for tests and for tools that print the candidates.
    /// </summary>
    public IReadOnlyDictionary<int, double> Distribution(ReadOnlySpan<float> logits, IReadOnlySet<int>? suppressed = null)
    {
        if (Options.IsGreedy) return new Dictionary<int, double> { [ArgMax(logits, suppressed)] = 1.0 };
        int kept = Candidates(logits, suppressed);
        var result = new Dictionary<int, double>(kept);
        for (int i = 0; i < kept; i++) result[_order[i]] = _probabilities[_order[i]];
        return result;
    }

    /// <summary>Fills _order[0..kept) with the kept ids (most likely first) and _probabilities[id] with their
    /// renormalized probabilities; returns kept.</summary>
    private int Candidates(ReadOnlySpan<float> logits, IReadOnlySet<int>? suppressed)
    {
        int vocab = logits.Length;
        if (_order.Length != vocab) { _order = new int[vocab]; _probabilities = new double[vocab]; }
        int n = 0;
        for (int i = 0; i < vocab; i++)
            if (!float.IsNaN(logits[i]) && !float.IsNegativeInfinity(logits[i]) && suppressed?.Contains(i) != true) _order[n++] = i;
        if (n == 0) throw new McException("sampling: every token id is masked or has logit -inf/NaN");

        // Most likely first; equal logits keep id order (a stable order, as torch.topk's ties are not specified).
        var scaled = new double[vocab];
        for (int i = 0; i < n; i++) scaled[_order[i]] = logits[_order[i]] / Options.Temperature;
        Array.Sort(_order, 0, n, Comparer<int>.Create((a, b) => scaled[a] != scaled[b] ? scaled[b].CompareTo(scaled[a]) : a.CompareTo(b)));

        int kept = Options.TopK > 0 ? Math.Min(Options.TopK, n) : n;
        Softmax(scaled, kept);
        if (Options.TopP < 1)
        {
            // Keep the most likely tokens until their probability reaches top_p (the one that crosses it included).
            double cumulative = 0;
            int cut = 0;
            while (cut < kept)
            {
                cumulative += _probabilities[_order[cut++]];
                if (cumulative >= Options.TopP) break;
            }
            kept = cut;
            Softmax(scaled, kept);
        }
        return kept;
    }

    private void Softmax(double[] scaled, int kept)
    {
        double max = scaled[_order[0]], sum = 0;
        for (int i = 0; i < kept; i++) sum += _probabilities[_order[i]] = Math.Exp(scaled[_order[i]] - max);
        for (int i = 0; i < kept; i++) _probabilities[_order[i]] /= sum;
    }

    /// <summary>The first index of the largest logit, skipping suppressed ids and NaNs.</summary>
    public static int ArgMax(ReadOnlySpan<float> logits, IReadOnlySet<int>? suppressed = null)
    {
        int best = -1;
        for (int i = 0; i < logits.Length; i++)
            if (!float.IsNaN(logits[i]) && suppressed?.Contains(i) != true && (best < 0 || logits[i] > logits[best])) best = i;
        if (best < 0) throw new McException("greedy decoding: every token id is masked or NaN");
        return best;
    }
}

/// <summary>
/// xoshiro256** (Blackman and Vigna, 2018), seeded through SplitMix64 as its authors recommend: a small, fast
/// generator whose output is fixed by its definition, unlike System.Random's.
/// </summary>
public sealed class Xoshiro256StarStar
{
    private ulong _s0, _s1, _s2, _s3;

    public Xoshiro256StarStar(ulong seed)
    {
        ulong x = seed;
        _s0 = SplitMix64(ref x); _s1 = SplitMix64(ref x); _s2 = SplitMix64(ref x); _s3 = SplitMix64(ref x);
    }

    /// <summary>A generator in a given state (not all zero), as the reference implementation's test vectors start.</summary>
    public static Xoshiro256StarStar FromState(ulong s0, ulong s1, ulong s2, ulong s3)
    {
        if ((s0 | s1 | s2 | s3) == 0) throw new ArgumentException("xoshiro256** needs a state that is not all zero");
        var g = new Xoshiro256StarStar(0);
        (g._s0, g._s1, g._s2, g._s3) = (s0, s1, s2, s3);
        return g;
    }

    public ulong NextUInt64()
    {
        ulong result = ulong.RotateLeft(_s1 * 5, 7) * 9;
        ulong t = _s1 << 17;
        _s2 ^= _s0; _s3 ^= _s1; _s1 ^= _s2; _s0 ^= _s3;
        _s2 ^= t;
        _s3 = ulong.RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>A uniform double in [0, 1) from the top 53 bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>One step of SplitMix64 (Steele, Lea and Flood, 2014): advances <paramref name="x"/> and returns the next output.</summary>
    public static ulong SplitMix64(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
