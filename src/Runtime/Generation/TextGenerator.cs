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
        var sampler = new Sampler(request.Sampling, request.Seed);
        var detokenizer = new IncrementalDetokenizer(tokenizer, request.PromptIds);
        var stops = new StopStrings(request.StopStrings ?? []);
        var eos = request.EosIds as IReadOnlySet<int> ?? request.EosIds.ToHashSet();
        stepper.Reset();
        var logits = stepper.Append(request.PromptIds.ToArray());
        for (int generated = 0; ; generated++)
        {
            cancel.ThrowIfCancellationRequested();
            if (generated == request.MaxNewTokens) { yield return Final(FinishReason.Length); yield break; }
            int next = sampler.Next(logits);
            if (eos.Contains(next)) { yield return Final(FinishReason.Eos); yield break; }
            var text = stops.Push(detokenizer.Push(next));
            if (stops.Stopped) { yield return new GenerationStep(next, text, FinishReason.Stop); yield break; }
            // A token at the last position of the context has no room after it to be fed.
            if (stepper.ContextLength is long context && stepper.Position >= context)
            {
                yield return new GenerationStep(next, text + stops.Push(detokenizer.Flush()) + stops.Flush(), stops.Stopped ? FinishReason.Stop : FinishReason.Context);
                yield break;
            }
            yield return new GenerationStep(next, text, null);
            if (generated + 1 < request.MaxNewTokens) logits = stepper.Append([next]);
        }

        GenerationStep Final(FinishReason reason)
        {
            var text = stops.Push(detokenizer.Flush());
            return new GenerationStep(-1, text + stops.Flush(), stops.Stopped ? FinishReason.Stop : reason);
        }
    }
}
