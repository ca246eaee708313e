using System.Text.Json.Nodes;
using ModelCompiler.Frontend;
using ModelCompiler.IR;

namespace ModelCompiler.Tests.Frontend;

/// <summary>The frontend in the steps the tests need: parse text, bind hyperparameters, elaborate.</summary>
internal static class Dsl
{
    public const string FileName = "t.arch";

    private static readonly IReadOnlyDictionary<string, string> NoSets = new Dictionary<string, string>();

    /// <summary>Parses and checks <paramref name="text"/>; fails the test with the rendered diagnostics when it does not load.</summary>
    public static ModelSource Load(string text)
    {
        var bag = new DiagnosticBag();
        var source = ArchLoader.LoadText(FileName, text, bag);
        Assert.True(source is not null && !bag.HasErrors, bag.Render());
        return source!;
    }

    /// <summary>Parses, binds (defaults, <paramref name="sets"/>, <paramref name="config"/>) and elaborates; fails the test on any diagnostic.</summary>
    public static Graph Elaborate(string text, IReadOnlyDictionary<string, string>? sets = null, JsonObject? config = null)
    {
        var source = Load(text);
        var hypers = HyperBinding.Resolve(source, config, config is null ? null : "config.json", sets ?? NoSets);
        var bag = new DiagnosticBag();
        var graph = Elaborator.Elaborate(source, hypers, bag);
        Assert.True(graph is not null, bag.Render());
        return graph!;
    }

    /// <summary>Every diagnostic of the first phase that fails (parse and check, hyper defaults, elaboration), sorted.</summary>
    public static IReadOnlyList<Diagnostic> Diagnose(string text, IReadOnlyDictionary<string, string>? sets = null)
    {
        var bag = new DiagnosticBag();
        var source = ArchLoader.LoadText(FileName, text, bag);
        if (source is null) return bag.Sorted().ToList();
        Dictionary<string, Value> hypers;
        try { hypers = HyperBinding.Resolve(source, null, null, sets ?? NoSets); }
        catch (CompilationFailedException e) { return e.Diagnostics.Sorted().ToList(); }
        Elaborator.Elaborate(source, hypers, bag);
        return bag.Sorted().ToList();
    }

    /// <summary>The printed graph without its hyperparameter table.</summary>
    public static string Print(Graph g, bool names = true) =>
        Printer.Print(g, new Printer.Options(ShowNames: names, ShowHyperparameters: false));

    /// <summary>One-line summaries "op: type" of every node that is not an input, weight or const.</summary>
    public static List<string> Ops(Graph g) =>
        g.Nodes.Where(n => !n.Op.IsLeaf()).Select(n => $"{n.Op.Mnemonic()}: {n.Type}").ToList();
}
