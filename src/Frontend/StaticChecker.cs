using System.Runtime.CompilerServices;
using ModelCompiler.IR;

namespace ModelCompiler.Frontend;

/// <summary>
/// Checks what can be checked without hyperparameter values, for every block whether or not it is
/// used: names defined before use, known functions and blocks, argument names and counts, type names.
/// Each problem is its own diagnostic, so one run reports them all.
/// </summary>
internal static class StaticChecker
{
    public static void Check(ModelSource source, DiagnosticBag diagnostics)
    {
        // Declarations that failed to parse are already reported; their names count as declared so
        // that every use of them is not reported again.
        var symbols = new HashSet<string>(source.BrokenNames, StringComparer.Ordinal);
        var hypers = new HashSet<string>(source.BrokenNames, StringComparer.Ordinal);
        foreach (var h in source.Hypers)
        {
            if (!ValueTypes.Names.Contains(h.Type.Name) || h.Type.Name is "tensor" or "list" or "any")
                diagnostics.Error(Codes.UnknownType, h.Type.Span, $"unknown hyperparameter type '{h.Type.Name}' (expected int, float, bool, string, ints or floats)");
            CheckExpr(h.Default, hypers, source, diagnostics, later: source.Hypers.Select(x => x.Name).Where(n => n != h.Name).Except(hypers).ToHashSet());
            hypers.Add(h.Name);
        }
        foreach (var input in source.Inputs)
            foreach (var d in input.Type.Dims)
                if (d is Ident id && !hypers.Contains(id.Name)) symbols.Add(id.Name);

        foreach (var block in source.Blocks.Values)
        {
            var scope = new HashSet<string>(symbols, StringComparer.Ordinal);
            foreach (var p in block.Params)
            {
                if (p.Type is not null && !ValueTypes.Names.Contains(p.Type.Name))
                    diagnostics.Error(Codes.UnknownType, p.Type.Span, $"unknown parameter type '{p.Type.Name}' (expected int, float, bool, string, tensor, list, ints, floats or any)");
                if (p.Default is not null) CheckExpr(p.Default, scope, source, diagnostics);
                if (!scope.Add(p.Name) && !symbols.Contains(p.Name))
                    diagnostics.Error(Codes.Duplicate, p.Span, $"parameter '{p.Name}' is declared twice");
            }
            CheckBody(block.Body, scope, source, diagnostics, inBlock: true);
        }
        if (source.Forward is { } forward)
        {
            var scope = new HashSet<string>(symbols.Concat(hypers).Concat(source.Inputs.Select(i => i.Name)), StringComparer.Ordinal);
            CheckBody(forward.Body, scope, source, diagnostics, inBlock: false);
        }
        else if (!source.ForwardBroken && (source.ModelName is not null || source.Hypers.Count > 0 || source.Inputs.Count > 0))
        {
            diagnostics.Error(Codes.MissingDeclaration, source.ModelSpan ?? new SourceSpan(source.RootPath, 1, 1),
                "the model has no 'forward { ... }' declaration");
        }
    }

    private static void CheckBody(IEnumerable<Stmt> body, HashSet<string> scope, ModelSource source, DiagnosticBag diagnostics, bool inBlock)
    {
        if (!EnoughStack(body.FirstOrDefault()?.Span, diagnostics)) return;
        foreach (var stmt in body)
        {
            switch (stmt)
            {
                case Assign a:
                    CheckExpr(a.Value, scope, source, diagnostics);
                    scope.UnionWith(a.Targets);
                    break;
                case WeightDecl w:
                    foreach (var d in w.Type.Dims) CheckExpr(d, scope, source, diagnostics);
                    CheckExpr(w.Source, scope, source, diagnostics);
                    foreach (var v in w.Views)
                        foreach (var arg in v.Args) CheckExpr(arg, scope, source, diagnostics);
                    scope.Add(w.Name);
                    break;
                case For f:
                    CheckExpr(f.From, scope, source, diagnostics);
                    CheckExpr(f.To, scope, source, diagnostics);
                    scope.Add(f.Var);
                    CheckBody(f.Body, scope, source, diagnostics, inBlock);
                    break;
                case If c:
                    CheckExpr(c.Condition, scope, source, diagnostics);
                    CheckBody(c.Then, scope, source, diagnostics, inBlock);
                    CheckBody(c.Else, scope, source, diagnostics, inBlock);
                    break;
                case Return r:
                    if (!inBlock) diagnostics.Error(Codes.ReturnMisplaced, r.Span, "'return' is only allowed in a block; forward uses 'output name = value'");
                    CheckExpr(r.Value, scope, source, diagnostics);
                    break;
                case Output o:
                    if (inBlock) diagnostics.Error(Codes.ReturnMisplaced, o.Span, "'output' is only allowed in forward; a block uses 'return'");
                    CheckExpr(o.Name, scope, source, diagnostics);
                    CheckExpr(o.Value, scope, source, diagnostics);
                    break;
                case ExprStmt e:
                    CheckExpr(e.Value, scope, source, diagnostics);
                    break;
            }
        }
    }

    /// <param name="later">names declared later (hyperparameters after this one): their use gets a clearer message</param>
    private static void CheckExpr(Expr expr, HashSet<string> scope, ModelSource source, DiagnosticBag diagnostics, IReadOnlySet<string>? later = null)
    {
        if (!EnoughStack(expr.Span, diagnostics)) return;
        switch (expr)
        {
            case Ident id:
                if (scope.Contains(id.Name)) break;
                if (later is not null && later.Contains(id.Name))
                    diagnostics.Error(Codes.UnknownName, id.Span, $"unknown name '{id.Name}': hyperparameter '{id.Name}' is declared later, and a default can only use earlier ones");
                else
                    diagnostics.Error(Codes.UnknownName, id.Span, $"unknown name '{id.Name}'{Suggest(id.Name, scope)}");
                break;
            case StringLit s:
                foreach (var part in s.Parts.OfType<Expr>()) CheckExpr(part, scope, source, diagnostics, later);
                break;
            case ListExpr l:
                foreach (var item in l.Items) CheckExpr(item, scope, source, diagnostics, later);
                break;
            case Unary u: CheckExpr(u.Operand, scope, source, diagnostics, later); break;
            case Binary b: CheckExpr(b.Left, scope, source, diagnostics, later); CheckExpr(b.Right, scope, source, diagnostics, later); break;
            case Conditional c:
                CheckExpr(c.Condition, scope, source, diagnostics, later);
                CheckExpr(c.Then, scope, source, diagnostics, later);
                CheckExpr(c.Else, scope, source, diagnostics, later);
                break;
            case Index ix: CheckExpr(ix.Target, scope, source, diagnostics, later); CheckExpr(ix.At, scope, source, diagnostics, later); break;
            case Call call:
                foreach (var arg in call.Args) CheckExpr(arg.Value, scope, source, diagnostics, later);
                if (source.BrokenNames.Contains(call.Callee)) break;
                IReadOnlyList<string>? parameters =
                    source.Blocks.TryGetValue(call.Callee, out var block) ? block.Params.Select(p => p.Name).ToList()
                    : Builtins.All.TryGetValue(call.Callee, out var builtin) ? builtin.Params.Select(p => p.Name).ToList()
                    : null;
                if (parameters is null)
                {
                    var known = source.Blocks.Keys.Concat(Builtins.All.Keys).ToHashSet();
                    diagnostics.Error(Codes.UnknownFunction, call.Span, $"unknown function or block '{call.Callee}'{Suggest(call.Callee, known)}");
                    break;
                }
                int positional = call.Args.Count(a => a.Name is null);
                if (positional > parameters.Count)
                    diagnostics.Error(Codes.BadArguments, call.Args[parameters.Count].Span,
                        $"{call.Callee} takes {parameters.Count} argument{(parameters.Count == 1 ? "" : "s")}, got {call.Args.Length}");
                foreach (var arg in call.Args.Where(a => a.Name is not null && !parameters.Contains(a.Name)))
                    diagnostics.Error(Codes.BadArguments, arg.Span, $"{call.Callee} has no parameter '{arg.Name}' (its parameters: {string.Join(", ", parameters)})");
                break;
        }
    }

    /// <summary>
    /// False (with one MC0107 diagnostic) when the stack is nearly used up: a pathologically nested
    /// expression is reported instead of ending the process with a stack overflow.
    /// </summary>
    private static bool EnoughStack(SourceSpan? at, DiagnosticBag diagnostics)
    {
        if (RuntimeHelpers.TryEnsureSufficientExecutionStack()) return true;
        if (at is not null && !diagnostics.Items.Any(d => d.Code == Codes.TooDeep))
            diagnostics.Error(Codes.TooDeep, at, "nested too deeply: simplify this expression or statement (split it with intermediate names)");
        return false;
    }

    /// <summary>"; did you mean 'n_heads'?" for a name one or two edits away from a known one.</summary>
    private static string Suggest(string name, IEnumerable<string> known)
    {
        var best = known.Select(k => (k, d: Distance(name, k))).Where(x => x.d <= 2 && x.d < name.Length)
            .OrderBy(x => x.d).ThenBy(x => x.k, StringComparer.Ordinal).FirstOrDefault();
        return best.k is null ? "" : $"; did you mean '{best.k}'?";
    }

    /// <summary>Edit distance counting a swap of two neighbours as one edit ("rleu" is one edit from "relu").</summary>
    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
            {
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
            }
        return d[a.Length, b.Length];
    }
}
