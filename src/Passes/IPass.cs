using ModelCompiler.IR;

namespace ModelCompiler.Passes;

/// <summary>A graph rewrite. Passes hold no state between runs and report whether they changed anything.</summary>
public interface IPass
{
    /// <summary>The pass's one name: its file, its CLI flag (<c>--disable-pass=dead-code-elimination</c>) and its test folder.</summary>
    string Name { get; }

    /// <summary>One line: what the pass does.</summary>
    string Description { get; }

    bool Run(Graph graph);
}
