namespace ModelCompiler.Runtime.Generation;

/// <summary>
/// A model that extends one sequence a few tokens at a time and returns the logits of its last position: the one
/// thing <see cref="TextGenerator"/> needs from a backend. Implementations keep their own KV cache (contiguous, or
/// paged and batched behind the same interface).
/// </summary>
public interface ITokenStepper
{
    /// <summary>Tokens fed since the last <see cref="Reset"/> (the next token's position).</summary>
    int Position { get; }

    /// <summary>The most positions the model handles (max_position_embeddings), when known.</summary>
    long? ContextLength { get; }

    /// <summary>Forgets the sequence (empties the cache) so that the next <see cref="Append"/> starts a new one.</summary>
    void Reset();

    /// <summary>Feeds <paramref name="tokens"/> (the prompt, then one token per step) after those already fed and
    /// returns the logits of the last one: a vocabulary-sized row the caller may keep.</summary>
    float[] Append(ReadOnlySpan<int> tokens);
}
