namespace ModelCompiler.Runtime.Paged;

/// <summary>
/// What one forward of a paged model runs over: T tokens (the model's input_ids [1, T]) drawn from one or more
/// sequences, each token with its sequence and position. Token t's keys and values go to
/// <c>Sequences[TokenSequence[t]]</c> at <c>TokenPosition[t]</c>; its query sees that sequence's cached tokens (those
/// its mask allows, up to <see cref="KeyCount"/>). Sized once for a maximum token count and reused from step to step.
/// </summary>
public sealed class PagedBatch
{
    private readonly KvSequence[] _sequences;
    private readonly int[] _keyCount;
    private readonly int[] _tokenSequence;
    private readonly long[] _tokenPosition;
    private float[] _scratch = [];

    public PagedBatch(KvBlockPool pool, int maxTokens, int maxSequences)
    {
        Pool = pool;
        _sequences = new KvSequence[maxSequences];
        _keyCount = new int[maxSequences];
        _tokenSequence = new int[maxTokens];
        _tokenPosition = new long[maxTokens];
    }

    public KvBlockPool Pool { get; }

    public int TokenCount { get; private set; }

    public int SequenceCount { get; private set; }

    public int MaxTokens => _tokenSequence.Length;

    public int MaxSequences => _sequences.Length;

    public KvSequence Sequence(int index) => _sequences[index];

    /// <summary>Tokens sequence <paramref name="index"/> holds once this batch's tokens are written.</summary>
    public int KeyCount(int index) => _keyCount[index];

    public ReadOnlySpan<int> TokenSequence => _tokenSequence.AsSpan(0, TokenCount);

    public ReadOnlySpan<long> TokenPosition => _tokenPosition.AsSpan(0, TokenCount);

    /// <summary>A reusable buffer of at least <paramref name="length"/> floats for a kernel of this batch's forward (it
    /// grows to the largest length asked for, then stays: a step's own tables, such as StreamingLLM's cos/sin).</summary>
    internal float[] Scratch(int length)
    {
        if (_scratch.Length < length) _scratch = new float[length];
        return _scratch;
    }

    public void Clear()
    {
        Array.Clear(_sequences, 0, SequenceCount);
        TokenCount = SequenceCount = 0;
    }

    /// <summary>Adds <paramref name="tokens"/> new tokens of <paramref name="sequence"/> (reserving their blocks); returns the sequence's index.</summary>
    public int Add(KvSequence sequence, int tokens)
    {
        if (sequence.Pool != Pool) throw new InvalidOperationException("the sequence belongs to another KV block pool");
        if (SequenceCount == MaxSequences || TokenCount + tokens > MaxTokens)
            throw new McException($"a paged batch holds at most {MaxSequences} sequences and {MaxTokens} tokens");
        sequence.Reserve(tokens);
        int index = SequenceCount++;
        _sequences[index] = sequence;
        _keyCount[index] = sequence.Length + tokens;
        for (int i = 0; i < tokens; i++)
        {
            _tokenSequence[TokenCount] = index;
            _tokenPosition[TokenCount++] = sequence.Length + i;
        }
        return index;
    }

    /// <summary>After the forward: every sequence counts its new tokens as cached.</summary>
    public void Commit()
    {
        for (int s = 0; s < SequenceCount; s++) _sequences[s].Advance(_keyCount[s] - _sequences[s].Length);
    }
}
