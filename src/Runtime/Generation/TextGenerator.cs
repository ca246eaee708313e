using ModelCompiler.Runtime.Tokenizers;

namespace ModelCompiler.Runtime.Generation;

/// <summary>Why generation ended.</summary>
public enum FinishReason
{
    /// <summary>The model produced one of the EOS ids (not output).</summary>
    Eos,
    /// <summary>A stop string appeared (it and what follows are not output).</summary>
    Stop,
    /// <summary>The requested number of new tokens was generated.</summary>
    Length,
    /// <summary>The sequence filled the model's context.</summary>
    Context,
}

/// <summary>One generation: the prompt's ids, how many new tokens at most, how to choose them and when to stop.</summary>
public sealed record GenerationRequest(IReadOnlyList<int> PromptIds, int MaxNewTokens, SamplingOptions Sampling, ulong Seed,
    IReadOnlyCollection<int> EosIds, IReadOnlyList<string>? StopStrings = null);

/// <summary>
/// One step of <see cref="TextGenerator.Generate"/>: the token chosen (-1 for the final step, which only flushes
/// held-back text) and the text that became certain with it. The last step has <see cref="Finish"/> set.
/// </summary>
public readonly record struct GenerationStep(int TokenId, string Text, FinishReason? Finish);

/// <summary>
/// The decode loop: prefill the prompt, then choose a token from the last logits (<see cref="Sampler"/>), stop on an
/// EOS id, a stop string, the token budget or the context, feed the token back, and stream its text
/// (<see cref="IncrementalDetokenizer"/>, <see cref="StopStrings"/>). The model is any <see cref="ITokenStepper"/>.
/// </summary>
public sealed class TextGenerator(ITokenStepper stepper, ITokenizer tokenizer)
{
    /// <summary>
    /// Runs <paramref name="request"/> from an empty cache. Each step is yielded as soon as its token is chosen; the
    /// concatenated texts are the completion (prompt excluded). Enumerate once, to the end or until cancelled.
    /// </summary>
    public IEnumerable<GenerationStep> Generate(GenerationRequest request, CancellationToken cancel = default)
    {
        if (request.PromptIds.Count == 0) throw new McException("the prompt encodes to no tokens (and the model has no BOS token to start from)");
        if (request.MaxNewTokens < 0) throw new McException($"--max-tokens {request.MaxNewTokens}: expected a number >= 0");
        if (stepper.ContextLength is long context && request.PromptIds.Count > context)
            throw new McException($"the prompt is {request.PromptIds.Count} tokens, longer than the model's context of {context}");
        return Steps(request, cancel);
    }

    private IEnumerable<GenerationStep> Steps(GenerationRequest request, CancellationToken cancel)
    {
        var decoder = new SampleDecoder(request, request.Seed, tokenizer);
        stepper.Reset();
        var logits = stepper.Append(request.PromptIds.ToArray());
        while (true)
        {
            cancel.ThrowIfCancellationRequested();
            var step = decoder.Next(logits, stepper.Position, stepper.ContextLength);
            yield return step;
            if (step.Finish is not null) yield break;
            if (decoder.WantsMore) logits = stepper.Append([step.TokenId]);
        }
    }
}

/// <summary>
/// One sequence's choices after the prefill: picks each token from the last logits (<see cref="Sampler"/>), stops on an
/// EOS id, a stop string, the token budget or the context, and turns the tokens into text (<see cref="IncrementalDetokenizer"/>,
/// <see cref="StopStrings"/>). <see cref="TextGenerator"/> drives one; <see cref="ParallelSampleGenerator"/> one per sample.
/// </summary>
public sealed class SampleDecoder(GenerationRequest request, ulong seed, ITokenizer tokenizer)
{
    private readonly Sampler _sampler = new(request.Sampling, seed);
    private readonly IncrementalDetokenizer _detokenizer = new(tokenizer, request.PromptIds);
    private readonly StopStrings _stops = new(request.StopStrings ?? []);
    private readonly IReadOnlySet<int> _eos = request.EosIds as IReadOnlySet<int> ?? request.EosIds.ToHashSet();

    public ulong Seed => seed;

    /// <summary>Tokens chosen so far.</summary>
    public int Generated { get; private set; }

    /// <summary>Whether the token just chosen should be fed back: the next <see cref="Next"/> chooses another one (otherwise it only ends).</summary>
    public bool WantsMore => Generated < request.MaxNewTokens;

    /// <summary>
    /// The next step from <paramref name="logits"/> (the last position's; unread once the budget is spent), given the
    /// tokens the model holds (<paramref name="position"/>) and its context, when it has one.
    /// </summary>
    public GenerationStep Next(ReadOnlySpan<float> logits, long position, long? context)
    {
        if (Generated == request.MaxNewTokens) return Final(FinishReason.Length);
        int next = _sampler.Next(logits);
        Generated++;
        if (_eos.Contains(next)) return Final(FinishReason.Eos);
        var text = _stops.Push(_detokenizer.Push(next));
        if (_stops.Stopped) return new GenerationStep(next, text, FinishReason.Stop);
        // A token at the last position of the context has no room after it to be fed.
        if (context is long c && position >= c)
            return new GenerationStep(next, text + _stops.Push(_detokenizer.Flush()) + _stops.Flush(), _stops.Stopped ? FinishReason.Stop : FinishReason.Context);
        return new GenerationStep(next, text, null);
    }

    private GenerationStep Final(FinishReason reason)
    {
        var text = _stops.Push(_detokenizer.Flush());
        return new GenerationStep(-1, text + _stops.Flush(), _stops.Stopped ? FinishReason.Stop : reason);
    }
}
