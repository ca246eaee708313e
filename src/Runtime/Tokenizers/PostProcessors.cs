namespace ModelCompiler.Runtime.Tokenizers;

/// <summary>Adds special tokens around an encoded sequence (Hugging Face's post-processors).</summary>
public interface IPostProcessor
{
    void Process(List<Token> tokens, bool addSpecialTokens);
}

/// <summary>TemplateProcessing's "single" template: special tokens (each one or more ids) around sequence A.</summary>
public sealed class TemplatePostProcessor(IReadOnlyList<(bool IsSequence, IReadOnlyList<Token> Special)> single) : IPostProcessor
{
    public void Process(List<Token> tokens, bool addSpecialTokens)
    {
        if (!addSpecialTokens) return;
        var result = new List<Token>(tokens.Count + 4);
        foreach (var (isSequence, special) in single)
        {
            if (isSequence) result.AddRange(tokens);
            else result.AddRange(special);
        }
        tokens.Clear();
        tokens.AddRange(result);
    }
}

/// <summary>BertProcessing and RobertaProcessing: cls + sequence + sep.</summary>
public sealed class ClsSepPostProcessor(Token cls, Token sep) : IPostProcessor
{
    public void Process(List<Token> tokens, bool addSpecialTokens)
    {
        if (!addSpecialTokens) return;
        tokens.Insert(0, cls);
        tokens.Add(sep);
    }
}

/// <summary>A post-processor that changes no ids (ByteLevel's only trims offsets).</summary>
public sealed class NoOpPostProcessor : IPostProcessor
{
    public void Process(List<Token> tokens, bool addSpecialTokens) { }
}

public sealed class SequencePostProcessor(IReadOnlyList<IPostProcessor> steps) : IPostProcessor
{
    public void Process(List<Token> tokens, bool addSpecialTokens)
    {
        foreach (var s in steps) s.Process(tokens, addSpecialTokens);
    }
}
