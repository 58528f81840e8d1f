#!/usr/bin/env bash
# Prints the accuracy table from bench/bayes-accuracy.sh's per-message results in OUT.
# "Marked spam" thresholds: correo Bayes p >= 0.9 (also shown at 0.5 and 0.99), correo and SpamAssassin
# score >= 5.0 (required_score), bogofilter class S (spamicity >= its spam_cutoff 0.99).
OUT=${1:-/tmp/correo-bayes-accuracy}
folds=$(cut -f1 "$OUT/spamassassin.tsv" 2>/dev/null | sort -u | tr '\n' ' ')
row() { # name file threshold [fold filter]
  awk -v t="$3" -v n="$1" -v ff="$4" 'BEGIN{split(ff,a," "); for(i in a) keep[a[i]]=1}
    (ff=="" || ($1 in keep)) && $3!="" {s=($3>=t); if($2=="spam"){ if(s)tp++; else fn++} else { if(s)fp++; else tn++}}
    END{p=tp/(tp+fp+1e-12); r=tp/(tp+fn+1e-12); printf "| %s | %d/%d | %.2f%% | %.2f%% | %.4f |\n", n, fp, fp+tn, 100*fp/(fp+tn+1e-12), 100*r, 2*p*r/(p+r+1e-12)}' "$2"
}
echo "| system | ham marked spam | FPR | spam recall | F1 |"
echo "|---|---|---|---|---|"
row "correo Bayes alone (p >= 0.9), 10 folds" "$OUT/correo-bayes.tsv" 0.9
row "correo Bayes alone (p >= 0.5), 10 folds" "$OUT/correo-bayes.tsv" 0.5
row "correo Bayes alone (p >= 0.99), 10 folds" "$OUT/correo-bayes.tsv" 0.99
row "correo rules alone (score >= 5), 10 folds" "$OUT/correo-rules.tsv" 5
row "correo rules + Bayes (score >= 5), 10 folds" "$OUT/correo-rules-bayes.tsv" 5
if [ -s "$OUT/stock/correo-rules-bayes.tsv" ]; then
  row "correo, SpamAssassin's stock rules alone (score >= 5), 10 folds" "$OUT/stock/correo-rules.tsv" 5
  row "correo, stock rules + correo Bayes (score >= 5), 10 folds" "$OUT/stock/correo-rules-bayes.tsv" 5
fi
for which in own stock; do
  if [ -s "$OUT/rescore-$which/correo-rules-bayes.tsv" ]; then
    row "correo, $which rules rescored per fold, set 0 (score >= 5), 10 folds" "$OUT/rescore-$which/correo-rules.tsv" 5
    row "correo, $which rules + correo Bayes, rescored per fold, set 2 (score >= 5), 10 folds" "$OUT/rescore-$which/correo-rules-bayes.tsv" 5
  fi
done
[ -s "$OUT/bogofilter.tsv" ] && row "bogofilter 1.2.5 (S), 10 folds" "$OUT/bogofilter.tsv" 1
if [ -s "$OUT/spamassassin.tsv" ]; then
  row "SpamAssassin 4.0 rules + Bayes (score >= 5), folds $folds" "$OUT/spamassassin.tsv" 5
  row "correo Bayes alone (p >= 0.9), folds $folds" "$OUT/correo-bayes.tsv" 0.9 "$folds"
  row "correo rules + Bayes (score >= 5), folds $folds" "$OUT/correo-rules-bayes.tsv" 5 "$folds"
  [ -s "$OUT/stock/correo-rules-bayes.tsv" ] && row "correo, stock rules + correo Bayes (score >= 5), folds $folds" "$OUT/stock/correo-rules-bayes.tsv" 5 "$folds"
  [ -s "$OUT/bogofilter.tsv" ] && row "bogofilter (S), folds $folds" "$OUT/bogofilter.tsv" 1 "$folds"
fi
exit 0
